"""`sentencekit` with sparse models (issue 14): `search --sparse` over a managed corpus index and an index folder
(sparse and hybrid results equal the library's, fusion weights), `index build / info / repair --sparse`, the
recorded sparse model loaded when `--sparse` is not given, the one-line errors (no sparse model, the wrong one,
one that is not available), and `encode --sparse` read back equal to `SparseEncoder.encode`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sentencekit.cli import main
from tests.conftest import build_tiny_mlm, build_tiny_splade

DOCS = [("refund", "refund policy please"), ("weather", "the weather in paris today"),
        ("password", "password reset help"), ("cat", "the cat sat on the mat"),
        ("ship", "shipping cost for a late delivery")]


def write_corpus(path: Path) -> Path:
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in DOCS), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def splade(tiny_splade_dir):
    from sentencekit import SparseEncoder

    return SparseEncoder(str(tiny_splade_dir), device="cpu")


@pytest.fixture(scope="module")
def other_splade_dir(tmp_path_factory) -> Path:
    """Another tiny SPLADE (other weights): a different sparse model for the mismatch errors."""
    root = tmp_path_factory.mktemp("other-splade")
    return build_tiny_splade(root / "model", build_tiny_mlm(root / "mlm", seed=7))


def sparse_ranking(splade, query: str) -> list[tuple[str, float]]:
    """The library's own ranking: dot products of encode_query with encode_document, non-zero, best first."""
    scores = splade.similarity(splade.encode_query([query]), splade.encode_document([t for _, t in DOCS]))[0]
    order = sorted(range(len(DOCS)), key=lambda i: (-float(scores[i]), i))
    return [(DOCS[i][0], float(scores[i])) for i in order if float(scores[i]) != 0]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def search_json(capsys, *args: str) -> list[dict]:
    assert main(["search", *args, "--rerank", "none", "--json"]) == 0
    return json.loads(capsys.readouterr().out)[0]["results"]


# -- search over the managed corpus index -------------------------------------------------------------------
def test_search_sparse_and_hybrid_over_a_corpus(tiny_st_dir, tiny_splade_dir, splade, tmp_path, capsys):
    corpus, cache = write_corpus(tmp_path / "c.jsonl"), tmp_path / "cache"
    common = ["--corpus", str(corpus), "--model", str(tiny_st_dir), "--cache-dir", str(cache), "-k", "5"]
    query = "password reset help"
    hits = search_json(capsys, query, *common, "--sparse", str(tiny_splade_dir))  # --sparse: sparse by default
    expected = sparse_ranking(splade, query)
    assert len(expected) >= 3  # the documents share terms with the query: a ranking, not an empty list
    assert [h["id"] for h in hits] == [doc for doc, _ in expected]
    np.testing.assert_allclose([h["score"] for h in hits], [s for _, s in expected], rtol=1e-5)
    assert all(set(h["found_by"]) == {"sparse"} for h in hits)
    assert len(list(cache.iterdir())) == 1

    # a second search reuses that index; hybrid fuses dense and sparse (and BM25 when the index keeps it)
    hits = search_json(capsys, query, *common, "--sparse", str(tiny_splade_dir), "--retrieval", "hybrid",
                       "--fusion-weights", "dense=0,sparse=1")
    assert [h["id"] for h in hits][:len(expected)] == [doc for doc, _ in expected]  # dense weighs 0: sparse order
    assert {"dense", "sparse"} <= {side for h in hits for side in h["found_by"]}
    assert len(list(cache.iterdir())) == 1
    assert main(["search", query, *common, "--sparse", str(tiny_splade_dir), "--rerank", "none"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "+ sparse model" in header and "embeddings reused" in header

    # without --sparse: the dense-only index of the same corpus, another cache entry
    assert [h["id"] for h in search_json(capsys, query, *common)]
    assert len(list(cache.iterdir())) == 2


def test_sparse_retrieval_without_a_sparse_model_is_one_error_line(tiny_st_dir, tmp_path, capsys):
    corpus = write_corpus(tmp_path / "c.jsonl")
    assert main(["search", "refund", "--corpus", str(corpus), "--model", str(tiny_st_dir), "--retrieval",
                 "sparse"]) == 1
    err = one_error_line(capsys)
    assert err.startswith("sentencekit search: error:") and "--sparse MODEL" in err

    for flag, value in (("--fusion-weights", "1,2"), ("--fusion", "rrf")):  # they only act on hybrid
        assert main(["search", "refund", "--corpus", str(corpus), "--model", str(tiny_st_dir), flag, value]) == 1
        assert flag in one_error_line(capsys)
    with pytest.raises(SystemExit) as exc:  # not numbers: a usage error, before anything loads
        main(["search", "refund", "--fusion-weights", "dense=a", "--retrieval", "hybrid"])
    assert exc.value.code == 2 and "--fusion-weights" in capsys.readouterr().err


# -- index build / info / search / repair ----------------------------------------------------------------------
def test_index_build_info_search_and_repair_with_a_sparse_side(tiny_st_dir, tiny_splade_dir, splade,
                                                               other_splade_dir, tmp_path, capsys):
    corpus, out = write_corpus(tmp_path / "c.jsonl"), tmp_path / "index"
    assert main(["index", "build", str(corpus), "--out", str(out), "--model", str(tiny_st_dir),
                 "--sparse", str(tiny_splade_dir)]) == 0
    assert "learned-sparse" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    # the recorded path is absolute: it resolves from any directory
    assert manifest["sparse"]["model"]["name_or_path"] == str(Path(tiny_splade_dir).resolve())

    assert main(["index", "info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "learned-sparse" in info and "--retrieval dense" in info and "sparse" in info.split("retrieval")[1]
    sparse_line = next(line for line in info.splitlines() if line.strip().startswith("sparse model"))
    assert str(tiny_splade_dir.name) in sparse_line and f"{splade.get_embedding_dimension()} terms" in sparse_line

    # no --sparse: the index's recorded sparse model is loaded
    base = ["--index", str(out), "--model", str(tiny_st_dir), "-k", "5"]
    hits = search_json(capsys, "password reset help", *base, "--retrieval", "sparse")
    assert [h["id"] for h in hits] == [doc for doc, _ in sparse_ranking(splade, "password reset help")]
    hits = search_json(capsys, "refund", *base, "--retrieval", "hybrid", "--fusion", "weighted",
                       "--fusion-weights", "dense=1,sparse=1")
    assert all(set(h["found_by"]) <= {"dense", "sparse"} for h in hits) and hits
    sides = 3 if "lexical" in manifest else 2
    assert main(["search", "refund", *base, "--retrieval", "hybrid", "--fusion-weights", "1"]) == 1
    err = one_error_line(capsys)
    assert f"--fusion-weights: got 1 number(s) for the {sides} sides" in err and "dense=1,sparse=1" in err

    # the wrong sparse model: one line naming both, for search and for build
    for argv in (["search", "refund", *base, "--retrieval", "sparse"],
                 ["index", "build", str(corpus), "--out", str(out), "--model", str(tiny_st_dir)]):
        assert main([*argv, "--sparse", str(other_splade_dir)]) == 1
        err = one_error_line(capsys)
        assert "was built with the sparse model" in err and str(other_splade_dir) in err and "--sparse" in err

    # a damaged sparse part: repair --sparse re-encodes it from the stored texts
    part = manifest["sparse"]["parts"][0]["roles"]["data"]
    (out / "segments" / part).write_bytes(b"\0" * (out / "segments" / part).stat().st_size)
    assert main(["index", "verify", str(out)]) == 1
    capsys.readouterr()
    assert main(["index", "repair", str(out), "--sparse", str(tiny_splade_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["sparse"] == "rebuilt"
    assert main(["index", "verify", str(out)]) == 0
    capsys.readouterr()
    assert [h["id"] for h in search_json(capsys, "password reset help", *base, "--retrieval", "sparse")] == [
        doc for doc, _ in sparse_ranking(splade, "password reset help")]
    assert main(["index", "repair", str(out), "--sparse", str(other_splade_dir)]) == 1
    assert "was built with the sparse model" in one_error_line(capsys)


def test_build_adds_a_sparse_side_to_an_index_and_needs_one_to_search_it(tiny_st_dir, tiny_splade_dir, splade,
                                                                         tmp_path, capsys):
    corpus, out = write_corpus(tmp_path / "c.jsonl"), tmp_path / "index"
    assert main(["index", "build", str(corpus), "--out", str(out), "--model", str(tiny_st_dir)]) == 0
    capsys.readouterr()
    base = ["--index", str(out), "--model", str(tiny_st_dir)]
    for extra in (["--retrieval", "sparse"], ["--sparse", str(tiny_splade_dir)]):
        assert main(["search", "refund", *base, *extra]) == 1
        err = one_error_line(capsys)
        assert "keeps no learned-sparse side" in err and "index build" in err and "--sparse MODEL" in err
    assert main(["index", "build", str(corpus), "--out", str(out), "--model", str(tiny_st_dir),
                 "--sparse", str(tiny_splade_dir)]) == 0
    assert "(0 added now)" in capsys.readouterr().out
    hits = search_json(capsys, "the cat sat", *base, "--retrieval", "sparse", "-k", "5")
    assert [h["id"] for h in hits] == [doc for doc, _ in sparse_ranking(splade, "the cat sat")]


def test_a_recorded_sparse_model_that_is_gone_is_one_error_line(tiny_st_dir, tiny_splade_dir, tmp_path, capsys):
    model = tmp_path / "splade-copy"
    shutil.copytree(tiny_splade_dir, model)
    corpus, out = write_corpus(tmp_path / "c.jsonl"), tmp_path / "index"
    assert main(["index", "build", str(corpus), "--out", str(out), "--model", str(tiny_st_dir),
                 "--sparse", str(model)]) == 0
    shutil.rmtree(model)
    capsys.readouterr()
    assert main(["search", "refund", "--index", str(out), "--model", str(tiny_st_dir), "--retrieval", "hybrid"]) == 1
    err = one_error_line(capsys)
    assert str(model) in err and "pass --sparse MODEL" in err
    assert main(["search", "refund", "--index", str(out), "--model", str(tiny_st_dir), "--rerank", "none"]) == 0
    capsys.readouterr()  # dense retrieval needs no sparse model
    # adding documents needs it too
    more = tmp_path / "more.jsonl"
    more.write_text(json.dumps({"id": "new", "text": "hello world"}) + "\n", encoding="utf-8")
    assert main(["index", "build", str(more), "--out", str(out), "--model", str(tiny_st_dir)]) == 1
    assert "pass --sparse MODEL" in one_error_line(capsys)
    assert main(["index", "build", str(more), "--out", str(out), "--model", str(tiny_st_dir), "--sparse",
                 str(tiny_splade_dir)]) == 0  # the same model (same fingerprint) from another folder
    assert "(1 added now)" in capsys.readouterr().out


# -- encode --sparse -------------------------------------------------------------------------------------------
TEXTS = ["how do i get a refund", "hello world", "the cat sat on the mat with my dog", "password"]


def test_encode_sparse_writes_npz_and_jsonl_equal_to_encode(tiny_splade_dir, splade, tmp_path, capsys):
    import scipy.sparse as sp

    src = tmp_path / "texts.txt"
    src.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    expected = splade.encode(TEXTS).to_dense().numpy()
    assert main(["encode", str(src), "-o", str(tmp_path / "e.npz"), "--sparse", str(tiny_splade_dir), "-q"]) == 0
    assert "4 x " in capsys.readouterr().err
    matrix = sp.load_npz(tmp_path / "e.npz")  # allow_pickle=False inside
    assert matrix.format == "csr" and matrix.dtype == np.float32 and matrix.shape == expected.shape
    np.testing.assert_allclose(matrix.toarray(), expected, atol=1e-5)
    with np.load(tmp_path / "e.npz", allow_pickle=False) as raw:
        assert {"data", "indices", "indptr", "shape"} <= set(raw.files)

    assert main(["encode", str(src), "-o", str(tmp_path / "e.jsonl"), "--sparse", str(tiny_splade_dir), "-q",
                 "--prompt-name", "query"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert len(rows) == len(TEXTS)
    query = splade.encode_query(TEXTS).to_dense().numpy()
    for row, want in zip(rows, query):
        assert [e["index"] for e in row] == np.flatnonzero(want).tolist()  # ascending, non-zero only
        np.testing.assert_allclose([e["value"] for e in row], want[want != 0], atol=1e-5)

    assert main(["encode", str(src), "-o", str(tmp_path / "few.jsonl"), "--sparse", str(tiny_splade_dir), "-q",
                 "--max-active-dims", "3"]) == 0
    assert all(len(json.loads(line)) <= 3 for line in (tmp_path / "few.jsonl").read_text().splitlines())


@pytest.mark.parametrize(("extra", "expected"), [
    (["-o", "e.npy"], ".npz (a SciPy CSR matrix) or .jsonl"),
    (["-o", "e.npz", "--normalize"], "--normalize applies to dense embeddings"),
    (["-o", "e.npz", "--precision", "int8"], "--precision applies to dense embeddings"),
])
def test_encode_sparse_refuses_dense_outputs_and_options(extra, expected, tiny_splade_dir, tmp_path, capsys,
                                                         monkeypatch):
    import sentencekit.cli_sides as cli_sides

    monkeypatch.setattr(cli_sides, "load_side_model", lambda *a: pytest.fail("checked before loading the model"))
    src = tmp_path / "texts.txt"
    src.write_text("hello\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["encode", str(src), "--sparse", str(tiny_splade_dir), *extra]) == 1
    err = one_error_line(capsys)
    assert err.startswith("sentencekit encode: error:") and expected in err


def test_max_active_dims_needs_sparse(tiny_st_dir, tmp_path, capsys):
    src = tmp_path / "texts.txt"
    src.write_text("hello\n", encoding="utf-8")
    assert main(["encode", str(src), "-o", str(tmp_path / "e.npy"), "--model", str(tiny_st_dir),
                 "--max-active-dims", "4"]) == 1
    assert "--sparse MODEL" in one_error_line(capsys)


def test_sparse_options_are_in_help_and_import_no_torch():
    import subprocess
    import sys

    code = ("import sys; from sentencekit.cli import build_parser; p = build_parser(); "
            "assert 'torch' not in sys.modules; print(p.format_help())")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    import argparse

    from sentencekit.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert "--sparse" in sub.choices["search"].format_help()
    assert "--fusion-weights" in sub.choices["search"].format_help()
    encode_help = sub.choices["encode"].format_help()
    assert "scipy.sparse.load_npz" in encode_help and ".jsonl" in encode_help
    index_sub = next(a for a in sub.choices["index"]._actions if isinstance(a, argparse._SubParsersAction))
    assert "--sparse" in index_sub.choices["build"].format_help()
    assert "--sparse" in index_sub.choices["repair"].format_help()


# -- a trained SPLADE ----------------------------------------------------------------------------------------
@pytest.mark.real_model
def test_splade_tiny_through_the_cli(tiny_st_dir, splade_tiny_dir, tmp_path, capsys):
    """SPLADE-tiny finds a refund answer of the bundled sample corpus in its top 3 for a refund question
    (sparse retrieval: the tiny random dense model takes no part; its first hit, "How do I reach customer
    service?", shares the question's wording with a title), and encode --sparse writes its 30,522-term vectors."""
    hits = search_json(capsys, "How do I get a refund?", "--model", str(tiny_st_dir), "--sparse",
                       str(splade_tiny_dir), "--cache-dir", str(tmp_path / "cache"), "-k", "3")
    assert len(hits) == 3
    assert any("refund" in (h["text"] + h["metadata"].get("title", "")).lower() for h in hits)
    src = tmp_path / "q.txt"
    src.write_text("capital of france\n", encoding="utf-8")
    assert main(["encode", str(src), "-o", str(tmp_path / "q.jsonl"), "--sparse", str(splade_tiny_dir), "-q"]) == 0
    row = json.loads((tmp_path / "q.jsonl").read_text())
    from sentencekit import SparseEncoder

    model = SparseEncoder(str(splade_tiny_dir), device="cpu")
    top = sorted(row, key=lambda e: -e["value"])[:2]
    assert {model.tokenizer.convert_ids_to_tokens(e["index"]) for e in top} == {"capital", "france"}
    assert max(e["index"] for e in row) < 30522
    torch.testing.assert_close(torch.tensor([e["value"] for e in row]),
                               model.encode("capital of france").coalesce().values(), atol=1e-5, rtol=1e-5)
