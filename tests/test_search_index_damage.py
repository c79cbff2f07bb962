"""Fault injection on EmbeddingIndex files: every kind of damage to every kind of file is an
IndexFormatError naming the file; verify() finds same-size damage that opening cannot; repair() leaves a
usable index and says which documents are lost (or re-embeds them from the stored texts)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sentencekit.cli import main
from sentencekit.search.index import EmbeddingIndex
from sentencekit.search.index_errors import IndexFormatError
from tests.test_search_index import LookupModel, unit

DIM = 16
FIRST, SECOND = [f"v{i}" for i in range(4)], [f"v{i}" for i in range(4, 8)]


@pytest.fixture()
def model():
    return LookupModel(unit(np.random.default_rng(0).standard_normal((12, DIM))).astype(np.float32))


def build(path: Path, model, precision: str = "float32") -> EmbeddingIndex:
    """Two segments (ids = texts) and one delete list (v5)."""
    index = EmbeddingIndex.create(path, model, precision=precision)
    index.add(FIRST, ids=FIRST)
    index.add(SECOND, ids=SECOND)
    index.delete(["v5"])
    return index


def first_segment(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())["log"][0]


def damage(file: Path, how: str) -> None:
    data = file.read_bytes()
    if how == "truncate":
        file.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        file.write_bytes(b"")
    elif how == "flip":  # same size, different bytes, still parseable: only a checksum can tell
        if file.name.endswith(".jsonl"):
            changed = data.replace(b'"v1"', b'"w1"', 1).replace(b'"text": "v0"', b'"text": "v9"', 1)
        else:  # the last bytes are array data, not the header
            changed = data[:-4] + bytes(b ^ 0x5A for b in data[-4:])
        assert changed != data and len(changed) == len(data)
        file.write_bytes(changed)


def search_ids(index: EmbeddingIndex, text: str) -> list[str]:
    return [h["id"] for h in index.search(text, top_k=20)]


ROLES = [("float32", "vectors"), ("float32", "docs"), ("int8", "vectors"), ("int8", "codes"), ("int8", "scale"),
         ("int8", "docs"), ("ubinary", "vectors"), ("ubinary", "codes"), ("ubinary", "docs")]


@pytest.mark.parametrize("how", ["truncate", "empty"])
@pytest.mark.parametrize(("precision", "role"), ROLES)
def test_cut_file_is_index_format_error_naming_it(model, tmp_path, precision, role, how):
    path = tmp_path / "idx"
    build(path, model, precision)
    name = first_segment(path)["roles"][role]
    damage(path / "segments" / name, how)
    with pytest.raises(IndexFormatError, match="damaged") as err:
        EmbeddingIndex.open(path, model)
    assert name in str(err.value) and "sentencekit index repair" in str(err.value)
    assert "bytes, the manifest recorded" in str(err.value) or "empty, the manifest recorded" in str(err.value)
    report = EmbeddingIndex.verify(path)
    assert not report["ok"] and [p["file"] for p in report["problems"]] == [name]


@pytest.mark.parametrize(("precision", "role"), ROLES)
def test_old_index_without_checksums_still_wraps_raw_errors(model, tmp_path, precision, role):
    """Without recorded sizes, the raw numpy/json errors (mmap length, EOFError, JSONDecodeError) must
    still come out as IndexFormatError naming the file."""
    path = tmp_path / "idx"
    build(path, model, precision)
    manifest = json.loads((path / "manifest.json").read_text())
    for entry in manifest["log"]:
        entry.pop("checks")
    (path / "manifest.json").write_text(json.dumps(manifest))
    name = manifest["log"][0]["roles"][role]
    for how in ("truncate", "empty"):
        original = (path / "segments" / name).read_bytes()
        damage(path / "segments" / name, how)
        with pytest.raises(IndexFormatError, match="damaged") as err:
            EmbeddingIndex.open(path, model)
        assert name in str(err.value)
        assert not isinstance(err.value.__cause__, FileNotFoundError)
        (path / "segments" / name).write_bytes(original)


def test_old_index_opens_and_gets_checksums_on_next_commit(model, tmp_path):
    path = tmp_path / "idx"
    build(path, model)
    manifest = json.loads((path / "manifest.json").read_text())
    for entry in manifest["log"]:
        entry.pop("checks")
    (path / "manifest.json").write_text(json.dumps(manifest))
    index = EmbeddingIndex.open(path, model)
    assert len(index) == 7 and EmbeddingIndex.verify(path)["unchecked"] == [e["name"] for e in manifest["log"]]
    index.add(["v8"], ids=["v8"])
    log = json.loads((path / "manifest.json").read_text())["log"]
    assert all(set(e["checks"]) == set(e["files"]) for e in log)
    assert EmbeddingIndex.verify(path) == {"ok": True, "problems": [], "unchecked": []}
    damage(path / "segments" / log[0]["roles"]["vectors"], "flip")
    assert not EmbeddingIndex.verify(path)["ok"]  # the recorded checksums are real, not placeholders


@pytest.mark.parametrize(("precision", "role"), ROLES)
def test_verify_finds_same_size_damage_that_open_cannot(model, tmp_path, precision, role):
    path = tmp_path / "idx"
    build(path, model, precision)
    assert EmbeddingIndex.verify(path)["ok"]
    name = first_segment(path)["roles"][role]
    damage(path / "segments" / name, "flip")
    EmbeddingIndex.open(path, model)  # sizes agree: opening does not read every byte
    report = EmbeddingIndex.verify(path)
    assert [(p["file"], "SHA-256" in p["problem"]) for p in report["problems"]] == [(name, True)]


@pytest.mark.parametrize(("precision", "role"), ROLES)
def test_repair_without_model_drops_segment_and_names_lost_ids(model, tmp_path, precision, role):
    path = tmp_path / "idx"
    build(path, model, precision)
    name = first_segment(path)["roles"][role]
    damage(path / "segments" / name, "truncate")
    report = EmbeddingIndex.repair(path)
    assert report["repaired"] and report["reembedded"] == []
    if role == "docs":  # ids come from the lines that still parse; the rest are counted
        assert set(report["lost_ids"]) <= set(FIRST) and report["lost_unknown"] == 4 - len(report["lost_ids"])
        assert report["lost_unknown"] >= 1
    else:
        assert report["lost_ids"] == FIRST and report["lost_unknown"] == 0
    assert (path / "damaged" / name).is_file() and not (path / "segments" / name).exists()
    assert EmbeddingIndex.verify(path)["ok"]
    index = EmbeddingIndex.open(path, model)
    assert index.ids() == ["v4", "v6", "v7"] and sorted(search_ids(index, "v4")) == ["v4", "v6", "v7"]
    index.add(FIRST, ids=FIRST)  # the lost documents can be added again
    assert sorted(search_ids(index, "v0")) == sorted(FIRST + ["v4", "v6", "v7"])


@pytest.mark.parametrize(("precision", "role"), [r for r in ROLES if r[1] != "docs"])
def test_repair_with_model_reembeds_from_stored_texts(model, tmp_path, precision, role):
    path = tmp_path / "idx"
    before = search_ids(build(path, model, precision), "v2")
    name = first_segment(path)["roles"][role]
    damage(path / "segments" / name, "flip")
    report = EmbeddingIndex.repair(path, model)
    assert report["reembedded"] == FIRST and report["lost_ids"] == [] and report["lost_unknown"] == 0
    assert EmbeddingIndex.verify(path)["ok"]
    index = EmbeddingIndex.open(path, model)
    assert index.ids() == FIRST + ["v4", "v6", "v7"] and search_ids(index, "v2") == before


def test_repair_of_healthy_index_changes_nothing(model, tmp_path):
    path = tmp_path / "idx"
    build(path, model)
    manifest = (path / "manifest.json").read_bytes()
    assert EmbeddingIndex.repair(path, model)["repaired"] is False
    assert (path / "manifest.json").read_bytes() == manifest and not (path / "damaged").exists()


@pytest.mark.parametrize("how", ["truncate", "empty", "flip"])
def test_damaged_delete_list(model, tmp_path, how):
    path = tmp_path / "idx"
    build(path, model)
    name = json.loads((path / "manifest.json").read_text())["log"][2]["files"][0]
    file = path / "segments" / name
    if how == "flip":
        file.write_bytes(file.read_bytes().replace(b"v5", b"v6"))
        assert len(EmbeddingIndex.open(path, model)) == 7  # same size: only verify sees it
    else:
        damage(file, how)
        with pytest.raises(IndexFormatError, match=name):
            EmbeddingIndex.open(path, model)
    assert [p["file"] for p in EmbeddingIndex.verify(path)["problems"]] == [name]
    report = EmbeddingIndex.repair(path)
    assert report["dropped_deletes"] == 1 and report["lost_ids"] == []
    assert "v5" in EmbeddingIndex.open(path, model)  # the deletion is lost, as the report says


@pytest.mark.parametrize("how", ["truncate", "empty", "garbage", "no-log"])
def test_damaged_manifest(model, tmp_path, how):
    path = tmp_path / "idx"
    build(path, model)
    manifest = path / "manifest.json"
    if how == "garbage":
        manifest.write_bytes(b"\xff\xfe" + manifest.read_bytes()[2:])
    elif how == "no-log":
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "log": "x"}))
    else:
        damage(manifest, how)
    for call in (lambda: EmbeddingIndex.open(path, model), lambda: EmbeddingIndex.verify(path),
                 lambda: EmbeddingIndex.repair(path)):
        with pytest.raises(IndexFormatError, match="manifest.json") as err:
            call()
        assert "damaged" in str(err.value) or "backup" in str(err.value)


def test_cli_verify_and_repair(model, tmp_path, capsys):
    path = tmp_path / "idx"
    build(path, model, "int8")
    assert main(["index", "verify", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    name = first_segment(path)["roles"]["codes"]
    damage(path / "segments" / name, "flip")
    assert main(["index", "verify", str(path)]) == 1
    out = capsys.readouterr()
    assert json.loads(out.out)["problems"][0]["file"] == name and "index repair" in out.err
    damage(path / "segments" / name, "truncate")
    assert main(["index", "info", str(path)]) == 1
    assert name in capsys.readouterr().err
    assert main(["index", "repair", str(path)]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["lost_ids"] == FIRST and "4 document(s) must be added again" in out.err
    assert main(["index", "verify", str(path)]) == 0


def test_missing_segment_file_is_repaired(model, tmp_path):
    path = tmp_path / "idx"
    build(path, model)
    name = first_segment(path)["roles"]["vectors"]
    (path / "segments" / name).unlink()
    with pytest.raises(IndexFormatError, match=name):
        EmbeddingIndex.open(path, model)
    assert EmbeddingIndex.verify(path)["problems"][0]["problem"] == "missing"
    assert EmbeddingIndex.repair(path, model)["reembedded"] == FIRST
    assert EmbeddingIndex.open(path, model).ids() == FIRST + ["v4", "v6", "v7"]


def test_repair_reembeds_chunked_documents(tiny_model, tmp_path):
    """Chunked documents are re-embedded window by window from the stored spans, so search after the
    repair returns the same documents, windows and scores as before the damage."""
    from tests.test_search_index import TEXTS

    path = tmp_path / "idx"
    index = EmbeddingIndex.create(path, tiny_model, precision="int8")
    index.add([" ".join(TEXTS)] + TEXTS[:2], ids=["long", "a", "b"], chunk=True, chunk_size=12, chunk_overlap=4)
    assert len(index.get("long")["chunks"]) > 2
    before = index.search("refund for my order", top_k=3)
    damage(path / "segments" / first_segment(path)["roles"]["vectors"], "empty")
    assert EmbeddingIndex.repair(path, tiny_model)["reembedded"] == ["long", "a", "b"]
    after = EmbeddingIndex.open(path, tiny_model).search("refund for my order", top_k=3)
    assert [(h["id"], h.get("chunk")) for h in after] == [(h["id"], h.get("chunk")) for h in before]
    np.testing.assert_allclose([h["score"] for h in after], [h["score"] for h in before], atol=1e-5)
