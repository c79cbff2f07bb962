"""Hybrid retrieval (issue 13 item 1): the fusion functions (hand-computed values), the bm25s lexical side of
EmbeddingIndex (stored, updated and crash-safe with the vectors; damage found, named and repaired; old
indexes without one), search(retrieval=, fusion=) and the CLI flags."""

from __future__ import annotations

import doctest
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from sentencekit.cli import main
from sentencekit.search import fusion, hybrid
from sentencekit.search import lexical as lexical_module
from sentencekit.search.fusion import reciprocal_rank_fusion, weighted_score_fusion
from sentencekit.search.index import EmbeddingIndex
from sentencekit.search.index_errors import IndexFormatError, IndexReadOnlyError
from sentencekit.search.lexical import LexicalIndex, load_lexical, tokenize
from sentencekit.search.storage import PAUSE_ENV
from tests.test_search_index import LookupModel, unit
from tests.test_search_index_damage import damage

DIM = 16
DOCS = {  # "v<i> ..." embeds to row i of the model's table; the words are what BM25 reads
    "refund": "v1 Refunds are paid back to your card within five days",
    "shipping": "v2 We ship parcels worldwide with tracked delivery",
    "password": "v3 Reset your password from the login page",
    "hours": "v4 Our office is closed on Sundays and public holidays",
    "returns": "v5 Return an item within thirty days for a full refund",
}


class TaggedModel(LookupModel):
    """A stand-in bi-encoder: a text starting with ``v<i>`` embeds to row ``i`` of a fixed matrix (others: row
    0), so the dense ranking is set by the test while BM25 reads the words."""

    def encode(self, texts, prompt=None, normalize_embeddings=False, truncate_dim=None, **kwargs):
        rows = [int(t.split()[0][1:]) if t.startswith("v") and t.split()[0][1:].isdigit() else 0 for t in texts]
        vectors = self.table.numpy()[rows][:, :truncate_dim]
        return unit(vectors) if normalize_embeddings else vectors

    encode_query = encode_document = encode


@pytest.fixture()
def model():
    return TaggedModel(unit(np.random.default_rng(0).standard_normal((12, DIM))).astype(np.float32))


def build(path: Path, model, lexical: bool = True) -> EmbeddingIndex:
    index = EmbeddingIndex.create(path, model, lexical=lexical)
    index.add(list(DOCS.values())[:3], ids=list(DOCS)[:3])
    index.add(list(DOCS.values())[3:], ids=list(DOCS)[3:])
    return index


def ids(hits) -> list[str]:
    return [h["id"] for h in hits]


def lexical_entry(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())["lexical"]


def reference_bm25(texts: dict[str, str], query: str) -> dict[str, float]:
    """BM25 scores straight from bm25s (no sentencekit storage in between), for the documents that match."""
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(tokenize(list(texts.values())), show_progress=False)
    scores = retriever.get_scores(tokenize([query])[0])
    return {doc_id: float(s) for doc_id, s in zip(texts, scores) if s > 0}


# -- fusion math ------------------------------------------------------------------------------------
def test_rrf_hand_computed():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]])  # k = 60
    expected = {"a": 1 / 61 + 1 / 62, "c": 1 / 63 + 1 / 61, "b": 1 / 62, "d": 1 / 63}
    assert [key for key, _ in fused] == ["a", "c", "b", "d"]
    assert dict(fused) == pytest.approx(expected, rel=1e-12)
    weighted = dict(reciprocal_rank_fusion([["a", "b"], ["b"]], k=1, weights=[2.0, 0.5]))
    assert weighted == pytest.approx({"a": 2 / 2, "b": 2 / 3 + 0.5 / 2})
    # a key repeated within one list counts once, at its first position; ties keep first-seen order
    assert reciprocal_rank_fusion([["x", "y", "x"], ["y", "x"]], k=0) == [("x", 1.5), ("y", 1.5)]
    assert reciprocal_rank_fusion([["a"], []], k=60) == [("a", pytest.approx(1 / 61))]


def test_weighted_fusion_hand_computed():
    lists = [{"a": 0.9, "b": 0.5, "c": 0.1}, {"c": 12.0, "a": 4.0, "d": 8.0}]
    # min-max: list 1 -> a 1, b .5, c 0, d (missing) 0; list 2 -> c 1, a 0, d .5, b (missing) 0
    fused = weighted_score_fusion(lists, weights=[1, 3])  # convex: 0.25, 0.75
    assert [key for key, _ in fused] == ["c", "d", "a", "b"]
    assert dict(fused) == pytest.approx({"a": 0.25, "b": 0.125, "c": 0.75, "d": 0.375})
    z = dict(weighted_score_fusion([{"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 5.0}], weights=[1, 1],
                                   normalization="zscore"))
    s = math.sqrt(2 / 3)  # population standard deviation of 1, 2, 3; list 2 is one hit: a 1, the others 0
    assert z == pytest.approx({"a": 0.5 * -1 / s + 0.5, "b": 0.0, "c": 0.5 * 1 / s})
    # one lexical hit (a rare term) gets full credit from its list, not 0
    assert dict(weighted_score_fusion([{"a": 0.9, "b": 0.5}, {"b": 3.0}], weights=[0.5, 0.5])) == {"a": 0.5, "b": 0.5}
    assert weighted_score_fusion([{"a": 0.7}, {"a": 2.0}], weights=[0.5, 0.5]) == [("a", 1.0)]  # one-doc corpus
    raw = dict(weighted_score_fusion([{"a": 2.0}, {"b": 6.0, "a": 1.0}], weights=[1, 1], normalization="none"))
    assert raw == pytest.approx({"a": 0.5 * 2 + 0.5 * 1, "b": 0.5 * 2 + 0.5 * 6})  # missing: the list's minimum


@pytest.mark.parametrize(("call", "message"), [
    (lambda: reciprocal_rank_fusion([["a"]], k=-1), "non-negative"),
    (lambda: reciprocal_rank_fusion([["a"], ["b"]], weights=[1.0]), "one weight per list"),
    (lambda: weighted_score_fusion([{"a": 1.0}], weights=[-1.0]), "non-negative"),
    (lambda: weighted_score_fusion([{"a": 1.0}, {"a": 2.0}], weights=[0, 0]), "positive"),
    (lambda: weighted_score_fusion([{"a": 1.0}], weights=[1], normalization="softmax"), "normalization"),
    (lambda: weighted_score_fusion([{"a": float("nan")}], weights=[1]), "finite"),
])
def test_fusion_refuses_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("module", [fusion, hybrid, lexical_module])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# -- the lexical side in the index --------------------------------------------------------------------
def test_lexical_side_is_stored_and_round_trips(model, tmp_path):
    path = tmp_path / "idx"
    index = build(path, model)
    entry = lexical_entry(path)
    assert entry["docs"] == 5 and set(entry["checks"]) == set(entry["files"]) and len(entry["files"]) == 4
    assert all((path / "segments" / name).is_file() for name in entry["files"])
    before = index.search("refund within days", top_k=5, retrieval="lexical")
    expected = reference_bm25(DOCS, "refund within days")
    assert ids(before) == sorted(expected, key=lambda d: -expected[d])
    assert {h["id"]: h["score"] for h in before} == pytest.approx(expected, rel=1e-5)
    assert all(h["found_by"] == {"lexical": {"rank": r, "score": h["score"]}} for r, h in enumerate(before, 1))

    reopened = EmbeddingIndex.open(path, model)
    assert reopened.search("refund within days", top_k=5, retrieval="lexical") == before
    # no pickle anywhere: every array loads with allow_pickle=False, the rest is JSON
    for name in entry["files"]:
        if name.endswith(".npy"):
            np.load(path / "segments" / name, allow_pickle=False)
        else:
            assert set(json.loads((path / "segments" / name).read_text())) == {"terms", "ids", "params"}
    loaded = load_lexical(path, entry)
    fresh = LexicalIndex.build(list(DOCS), list(DOCS.values()))
    assert loaded.ids == fresh.ids and loaded.terms == fresh.terms
    for role in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(loaded.arrays[role], fresh.arrays[role])
    assert index.search("the and of", retrieval="lexical") == []  # only stopwords: nothing matches


def test_add_delete_and_compact_update_the_lexical_side(model, tmp_path):
    index = build(tmp_path / "idx", model)
    assert "refund" in ids(index.search("refund", retrieval="lexical"))
    index.add(["v6 Refund requests need the order number"], ids=["refund-form"])
    assert set(ids(index.search("refund", retrieval="lexical"))) == {"refund", "returns", "refund-form"}
    index.delete(["refund", "returns"])
    hits = index.search("refund", retrieval="lexical")
    assert ids(hits) == ["refund-form"]
    live = {"shipping": DOCS["shipping"], "password": DOCS["password"], "hours": DOCS["hours"],
            "refund-form": "v6 Refund requests need the order number"}
    assert hits[0]["score"] == pytest.approx(reference_bm25(live, "refund")["refund-form"], rel=1e-5)  # IDF updated
    index.delete("refund-form")
    index.add(["v7 Refunds now take two days"], ids=["refund-form"])  # replace = delete, then add
    assert [(h["id"], h["text"]) for h in index.search("refund", retrieval="lexical")] == [
        ("refund-form", "v7 Refunds now take two days")]
    before = index.search("password login", retrieval="lexical")
    index.compact()
    assert index.search("password login", retrieval="lexical") == before
    assert EmbeddingIndex.verify(index.path)["ok"]
    # the files of replaced lexical sides are removed once a newer manifest is committed
    names = {p.name for p in (index.path / "segments").iterdir() if p.name.startswith("lex-")}
    assert names == set(lexical_entry(index.path)["files"])


def test_hybrid_fuses_both_sides_and_reports_who_found_what(model, tmp_path):
    index = build(tmp_path / "idx", model)
    query = "v4 reset password"  # dense: row 4 ("hours") first; BM25: "password"
    dense = index.search(query, top_k=5)
    lexical = index.search(query, top_k=5, retrieval="lexical")
    assert dense[0]["id"] == "hours" and lexical[0]["id"] == "password" and "found_by" not in dense[0]
    hits = index.search(query, top_k=5, retrieval="hybrid")
    expected = reciprocal_rank_fusion([ids(dense), ids(lexical)])
    assert [(h["id"], h["score"]) for h in hits] == [(k, pytest.approx(s)) for k, s in expected]
    by_id = {h["id"]: h for h in hits}
    at = ids(dense).index("password")
    assert by_id["password"]["found_by"] == {"dense": {"rank": at + 1, "score": pytest.approx(dense[at]["score"])},
                                             "lexical": {"rank": 1, "score": pytest.approx(lexical[0]["score"])}}
    assert all(set(h["found_by"]) == {"dense"} for h in hits if h["id"] not in ids(lexical))
    assert all(h["found_by"]["dense"]["rank"] == ids(dense).index(h["id"]) + 1 for h in hits)

    weighted = index.search(query, top_k=5, retrieval="hybrid", fusion="weighted", fusion_weights=(0.3, 0.7))
    expected = weighted_score_fusion([{h["id"]: h["score"] for h in dense}, {h["id"]: h["score"] for h in lexical}],
                                     weights=[0.3, 0.7])
    assert [(h["id"], h["score"]) for h in weighted] == [(k, pytest.approx(s)) for k, s in expected]
    assert set(h["metadata"] is None and h["text"] == DOCS[h["id"]] for h in weighted) == {True}

    # each side retrieves `candidates` documents before fusion
    narrow = index.search(query, top_k=5, retrieval="hybrid", candidates=1)
    assert {h["id"] for h in narrow} == {"hours", "password"}
    # the reranker re-scores the fused list; the fused score is kept as retrieval_score
    class Longest:
        def predict(self, pairs):
            return np.array([len(text) for _, text in pairs], dtype=float)

    reranked = index.search(query, top_k=2, retrieval="hybrid", reranker=Longest(), rerank_top_n=5)
    assert [h["score"] for h in reranked] == sorted((len(t) for t in DOCS.values()), reverse=True)[:2]
    fused = {h["id"]: h["score"] for h in hits}
    assert all(h["retrieval_score"] == pytest.approx(fused[h["id"]]) and "found_by" in h for h in reranked)


@pytest.mark.parametrize(("options", "message"), [
    ({"retrieval": "semantic"}, "retrieval must be one of"),
    ({"retrieval": "sparse"}, "keeps no sparse side"),  # valid, but this index has no sparse side
    ({"retrieval": "hybrid", "fusion_weights": {"dense": 1, "bm25": 1}}, "unknown sides"),
    ({"retrieval": "hybrid", "fusion": "max"}, "fusion must be one of"),
    ({"retrieval": "hybrid", "fusion_weights": (1.0,)}, "fusion_weights"),
    ({"retrieval": "hybrid", "candidates": 0}, "candidates"),
    ({"retrieval": "hybrid", "rrf_k": -5}, "rrf_k"),
])
def test_bad_options_are_refused(model, tmp_path, options, message):
    index = build(tmp_path / "idx", model)
    with pytest.raises(ValueError, match=message):
        index.search("refund", **options)


# -- indexes without a lexical side ---------------------------------------------------------------------
def test_index_without_lexical_side_builds_it_on_first_hybrid_search(model, tmp_path):
    path = tmp_path / "idx"
    build(path, model, lexical=False)  # what every index written before this change looks like
    manifest = json.loads((path / "manifest.json").read_text())
    assert "lexical" not in manifest and not [p for p in (path / "segments").iterdir() if p.name.startswith("lex-")]
    index = EmbeddingIndex.open(path, model)
    dense = index.search("v1 refund", top_k=3)
    assert all(set(h) == {"id", "score", "text", "metadata"} for h in dense)  # dense results unchanged
    with pytest.raises(IndexReadOnlyError, match="without a model"):
        EmbeddingIndex.open(path).search("refund", retrieval="hybrid")
    hits = index.search("v1 refund", top_k=3, retrieval="hybrid")
    assert hits[0]["id"] == "refund" and set(hits[0]["found_by"]) == {"dense", "lexical"}
    after = json.loads((path / "manifest.json").read_text())
    assert after["lexical"]["docs"] == 5 and after["generation"] == manifest["generation"] + 1
    assert after["log"] == manifest["log"] and EmbeddingIndex.verify(path)["ok"]
    index.add(["v8 Refund desk opens at nine"], ids=["desk"])  # kept up to date from now on
    assert "desk" in ids(EmbeddingIndex.open(path, model).search("refund", retrieval="lexical"))


def test_without_bm25s_lexical_search_says_what_to_install(model, tmp_path, monkeypatch):
    index = build(tmp_path / "idx", model, lexical=False)
    monkeypatch.setitem(sys.modules, "bm25s", None)  # import bm25s now raises ImportError
    with pytest.raises(ImportError, match=r"sentencekit\[hybrid\]"):
        index.search("refund", retrieval="hybrid")
    with pytest.raises(ImportError, match=r"sentencekit\[hybrid\]"):
        EmbeddingIndex.create(tmp_path / "other", model, lexical=True)
    assert ids(index.search("v1", top_k=1)) == ["refund"]  # dense search needs nothing more
    assert "lexical" not in index.manifest


# -- damage and crashes ------------------------------------------------------------------------------
ROLES = ["data", "indices", "indptr", "terms"]


@pytest.mark.parametrize("how", ["truncate", "empty"])
@pytest.mark.parametrize("role", ROLES)
def test_damaged_lexical_file_is_named_and_repair_rebuilds_it(model, tmp_path, role, how):
    path = tmp_path / "idx"
    index = build(path, model)
    before = index.search("refund days", retrieval="lexical")
    name = lexical_entry(path)["roles"][role]
    damage(path / "segments" / name, how)
    reopened = EmbeddingIndex.open(path, model)  # the vectors are intact: dense search still works
    assert ids(reopened.search("v1", top_k=1)) == ["refund"]
    with pytest.raises(IndexFormatError, match="damaged") as err:
        reopened.search("refund days", retrieval="hybrid")
    assert name in str(err.value) and "sentencekit index repair" in str(err.value)
    report = EmbeddingIndex.verify(path)
    assert [(p["file"], p["kind"]) for p in report["problems"]] == [(name, "lexical")]

    repaired = EmbeddingIndex.repair(path)  # no model needed: BM25 is rebuilt from the stored texts
    assert repaired["lexical"] == "rebuilt" and repaired["lost_ids"] == [] and f"damaged/{name}" in repaired["moved"]
    assert EmbeddingIndex.verify(path) == {"ok": True, "problems": [], "unchecked": []}
    assert EmbeddingIndex.open(path, model).search("refund days", retrieval="lexical") == before
    assert len(EmbeddingIndex.open(path)) == 5


def test_same_size_damage_is_found_by_verify_and_repaired(model, tmp_path):
    path = tmp_path / "idx"
    build(path, model)
    name = lexical_entry(path)["roles"]["data"]
    damage(path / "segments" / name, "flip")
    report = EmbeddingIndex.verify(path)
    assert [(p["file"], "SHA-256" in p["problem"]) for p in report["problems"]] == [(name, True)]
    assert EmbeddingIndex.repair(path)["lexical"] == "rebuilt" and EmbeddingIndex.verify(path)["ok"]


def test_repair_that_drops_a_segment_rebuilds_the_lexical_side_without_it(model, tmp_path):
    path = tmp_path / "idx"
    build(path, model)
    segment = json.loads((path / "manifest.json").read_text())["log"][0]
    damage(path / "segments" / segment["roles"]["vectors"], "truncate")
    report = EmbeddingIndex.repair(path)
    assert report["lost_ids"] == ["refund", "shipping", "password"] and report["lexical"] == "rebuilt"
    index = EmbeddingIndex.open(path, model)
    assert ids(index.search("refund", retrieval="lexical")) == ["returns"]  # not the lost "refund"
    assert lexical_entry(path)["docs"] == 2 and EmbeddingIndex.verify(path)["ok"]


def test_lexical_side_written_with_other_settings_is_refused(model, tmp_path):
    path = tmp_path / "idx"
    build(path, model)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["lexical"]["params"] = {**manifest["lexical"]["params"], "stemmer": "german"}
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="other settings"):
        EmbeddingIndex.open(path, model).search("refund", retrieval="lexical")


def test_state_left_by_a_writer_killed_before_commit(model, tmp_path):
    """Built by hand: a newer lexical side written in full (and one cut short) but never committed."""
    path = tmp_path / "idx"
    index = build(path, model)
    before = index.search("refund days", retrieval="lexical")
    for name in lexical_entry(path)["files"]:
        orphan = path / "segments" / name.replace(lexical_entry(path)["name"], "lex-000099-deadbeef")
        orphan.write_bytes((path / "segments" / name).read_bytes()[:7])
    reopened = EmbeddingIndex.open(path, model)
    assert reopened.search("refund days", retrieval="lexical") == before and EmbeddingIndex.verify(path)["ok"]
    reopened.add(["v9 Refunds for gift cards"], ids=["gift"])
    assert not [p for p in (path / "segments").iterdir() if "deadbeef" in p.name]  # the next writer removes them
    assert "gift" in ids(reopened.search("refund", retrieval="lexical"))


def test_reader_rereads_the_manifest_when_a_writer_replaced_the_lexical_files(model, tmp_path, monkeypatch):
    index = build(tmp_path / "idx", model)
    real, calls = lexical_module.load_lexical, []

    def replaced_once(root, entry):
        calls.append(entry["name"])
        if len(calls) == 1:
            raise FileNotFoundError(2, "No such file", str(root))
        return real(root, entry)

    monkeypatch.setattr(lexical_module, "load_lexical", replaced_once)
    assert ids(index.search("password", retrieval="lexical")) == ["password"] and len(calls) == 2


WRITER = textwrap.dedent("""
    import sys
    from sentencekit import SentenceTransformer
    from sentencekit.search.index import EmbeddingIndex

    model_dir, path = sys.argv[1], sys.argv[2]
    index = EmbeddingIndex.open(path, SentenceTransformer(model_dir, device="cpu"))
    index.add(["killed refund document"], ids=["killed"])
""")


@pytest.mark.slow
def test_writer_killed_after_writing_the_lexical_side_leaves_the_committed_one(tiny_model, tiny_st_dir, tmp_path):
    path = tmp_path / "idx"
    index = EmbeddingIndex.create(path, tiny_model, lexical=True)
    index.add(["refund policy", "password reset help"], ids=["a", "b"])
    committed = set(os.listdir(path / "segments"))
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    writer = subprocess.Popen([sys.executable, str(script), str(tiny_st_dir), str(path)],
                              env={**os.environ, PAUSE_ENV: "60"}, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    # the lexical side is written last, just before the (paused) commit
    while not any(n.endswith(".terms.json") for n in set(os.listdir(path / "segments")) - committed):
        assert writer.poll() is None, writer.stderr.read().decode()
        assert time.monotonic() < deadline, "the writer never wrote its lexical side"
        time.sleep(0.05)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    writer.stderr.close()

    reopened = EmbeddingIndex.open(path, tiny_model)
    assert reopened.ids() == ["a", "b"] and EmbeddingIndex.verify(path)["ok"]
    assert ids(reopened.search("refund", retrieval="lexical")) == ["a"]  # not the uncommitted "killed"
    reopened.add(["another refund"], ids=["c"])  # the next write removes the orphans and rebuilds
    assert set(os.listdir(path / "segments")) == set().union(*(
        set(e["files"]) for e in [*reopened.manifest["log"], reopened.manifest["lexical"]]))
    assert set(ids(reopened.search("refund", retrieval="lexical"))) == {"a", "c"}


# -- CLI -----------------------------------------------------------------------------------------------
def write_corpus(path: Path) -> Path:
    rows = [("refund", "refund policy please"), ("weather", "the weather in paris today"),
            ("password", "password reset help"), ("cat", "the cat sat on the mat")]
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in rows))
    return path


def test_cli_index_build_keeps_a_lexical_side_and_search_flags(tiny_st_dir, tmp_path, capsys):
    corpus, out = write_corpus(tmp_path / "c.jsonl"), tmp_path / "index"
    assert main(["index", "build", str(corpus), "--out", str(out), "--model", str(tiny_st_dir)]) == 0
    assert lexical_entry(out)["docs"] == 4
    capsys.readouterr()
    base = ["search", "--index", str(out), "--model", str(tiny_st_dir), "--rerank", "none", "--json"]
    assert main([*base[:1], "password help", *base[1:], "--retrieval", "lexical"]) == 0
    hits = json.loads(capsys.readouterr().out)[0]["results"]
    assert [h["id"] for h in hits] == ["password"] and hits[0]["found_by"]["lexical"]["rank"] == 1
    for fusion_name in ("rrf", "weighted"):
        assert main([*base[:1], "password help", *base[1:], "--retrieval", "hybrid", "--fusion", fusion_name]) == 0
        hits = json.loads(capsys.readouterr().out)[0]["results"]
        assert len(hits) == 4 and hits[0]["found_by"]["lexical"]["rank"] == 1
        assert all(set(h["found_by"]) <= {"dense", "lexical"} for h in hits)
    assert main([*base[:1], "password help", *base[1:]]) == 0  # default: dense, unchanged output
    assert all("found_by" not in h for h in json.loads(capsys.readouterr().out)[0]["results"])
    assert main([*base[:1], "password", *base[1:], "--retrieval", "sparse"]) == 1  # no sparse side: one line
    assert "keeps no learned-sparse side" in capsys.readouterr().err

    # verify names a damaged lexical file; repair rebuilds it
    name = lexical_entry(out)["roles"]["indptr"]
    damage(out / "segments" / name, "truncate")
    assert main(["index", "verify", str(out)]) == 1
    assert name in capsys.readouterr().out
    assert main(["index", "repair", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["lexical"] == "rebuilt"
    assert main(["index", "verify", str(out)]) == 0


def test_cli_no_lexical_then_hybrid_search_builds_it(tiny_st_dir, tmp_path, capsys, monkeypatch):
    corpus, out = write_corpus(tmp_path / "c.jsonl"), tmp_path / "index"
    assert main(["index", "build", str(corpus), "--out", str(out), "--model", str(tiny_st_dir), "--no-lexical"]) == 0
    assert "lexical" not in json.loads((out / "manifest.json").read_text())
    capsys.readouterr()
    assert main(["search", "refund", "--index", str(out), "--model", str(tiny_st_dir), "--rerank", "none",
                 "--retrieval", "hybrid", "--json"]) == 0
    assert "refund" in [h["id"] for h in json.loads(capsys.readouterr().out)[0]["results"]]
    assert lexical_entry(out)["docs"] == 4
    monkeypatch.setitem(sys.modules, "bm25s", None)  # without the extra: one line saying what to install
    assert main(["search", "refund", "--corpus", str(corpus), "--model", str(tiny_st_dir), "--rerank", "none",
                 "--cache-dir", str(tmp_path / "cache"), "--retrieval", "lexical"]) == 1
    assert "sentencekit[hybrid]" in capsys.readouterr().err


def test_a_chunked_document_found_by_bm25_alone_reports_the_matching_chunk(tmp_path, tiny_model):
    index = EmbeddingIndex.create(tmp_path / "idx", tiny_model, lexical=True)
    text = " ".join(["the weather in paris is mild today"] * 12 + ["your refund code is zebra42"])
    index.add([text, "shipping takes five days"], ids=["manual", "ship"], chunk=True, chunk_size=16,
              chunk_overlap=0)
    hit = index.search("zebra42", top_k=1, retrieval="lexical")[0]
    assert hit["id"] == "manual" and hit["chunk"]["index"] > 0 and "zebra42" in hit["chunk"]["text"]
