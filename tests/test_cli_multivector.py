"""`sentencekit` with multi-vector (ColBERT) models (issue 15): `index build / info / repair --multivector`,
`search --multivector` over an index folder and a managed corpus index (multivector and hybrid results equal
`EmbeddingIndex.search` in Python), the recorded model loaded when `--multivector` is not given, and the
one-line errors (not a ColBERT folder, another ColBERT model than the index's, an index without the side, a
recorded model that is gone)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sentencekit.cli import main
from tests.conftest import build_tiny_multivector
from tests.test_cli_sparse import DOCS, one_error_line, search_json, write_corpus

QUERY = "password reset help"


@pytest.fixture(scope="module")
def colbert(tiny_mv_dir):
    from sentencekit import MultiVectorEncoder

    return MultiVectorEncoder(str(tiny_mv_dir), device="cpu")


@pytest.fixture(scope="module")
def dense(tiny_st_dir):
    from sentencekit import SentenceTransformer

    return SentenceTransformer(str(tiny_st_dir), device="cpu")


@pytest.fixture(scope="module")
def other_mv_dir(tmp_path_factory, tiny_bert_dir) -> Path:
    """Another tiny ColBERT (another projection): a different multi-vector model for the mismatch errors."""
    return build_tiny_multivector(tmp_path_factory.mktemp("other-mv") / "model", tiny_bert_dir, seed=7)


@pytest.fixture(scope="module")
def library_index(dense, colbert, tmp_path_factory):
    """The same documents indexed in Python, with the same two models."""
    from sentencekit.search.index import EmbeddingIndex

    index = EmbeddingIndex.create(tmp_path_factory.mktemp("py-index") / "index", dense, multivector_model=colbert,
                                  lexical=False)
    index.add([t for _, t in DOCS], ids=[i for i, _ in DOCS])
    return index


def library_hits(index, query: str, **options) -> list[tuple[str, float]]:
    return [(h["id"], h["score"]) for h in index.search([query], top_k=5, **options)[0]]


def assert_same_hits(hits: list[dict], expected: list[tuple[str, float]]) -> None:
    assert len(expected) == len(DOCS)  # a full ranking, not an empty list that would match anything
    assert [h["id"] for h in hits] == [doc for doc, _ in expected]
    np.testing.assert_allclose([h["score"] for h in hits], [s for _, s in expected], rtol=1e-5)


def build(corpus: Path, out: Path, model: Path, *extra: str) -> int:
    return main(["index", "build", str(corpus), "--out", str(out), "--model", str(model), *extra])


# -- index build / info / search / repair ---------------------------------------------------------------------
def test_index_build_info_search_and_repair_with_a_multivector_side(tiny_st_dir, tiny_mv_dir, library_index,
                                                                    tmp_path, capsys):
    corpus, out = write_corpus(tmp_path / "c.jsonl"), tmp_path / "index"
    assert build(corpus, out, tiny_st_dir, "--multivector", str(tiny_mv_dir)) == 0
    assert "multi-vector token embeddings (5 added now)" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["multivector"]["model"]["name_or_path"] == str(Path(tiny_mv_dir).resolve())

    assert main(["index", "info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "multivector" in next(line for line in info.splitlines() if line.strip().startswith("retrieval"))
    mv_line = next(line for line in info.splitlines() if line.strip().startswith("multi-vector model"))
    assert str(Path(tiny_mv_dir).resolve()) in mv_line and "16-dim" in mv_line

    expected = library_hits(library_index, QUERY, retrieval="multivector")
    base = ["--index", str(out), "--model", str(tiny_st_dir), "-k", "5"]
    # --multivector: multivector retrieval by default; without it, the index's recorded model is loaded
    hits = search_json(capsys, QUERY, *base, "--multivector", str(tiny_mv_dir))
    assert all(set(h["found_by"]) == {"multivector"} for h in hits)
    assert_same_hits(hits, expected)
    assert_same_hits(search_json(capsys, QUERY, *base, "--retrieval", "multivector"), expected)

    weights = {"dense": 1.0, "multivector": 1.0}
    hits = search_json(capsys, QUERY, *base, "--retrieval", "hybrid", "--fusion-weights", "dense=1,multivector=1")
    assert_same_hits(hits, library_hits(library_index, QUERY, retrieval="hybrid", fusion_weights=weights))
    assert {side for h in hits for side in h["found_by"]} == {"dense", "multivector"}
    sides = "dense,multivector,lexical" if "lexical" in manifest else "dense,multivector"
    assert main(["search", QUERY, *base, "--retrieval", "hybrid", "--fusion-weights", "1"]) == 1
    err = one_error_line(capsys)
    assert f"({sides.replace(',', ', ')})" in err and sides.replace(",", "=1,") + "=1" in err

    # a damaged token part: repair --multivector re-encodes it from the stored texts
    part = manifest["multivector"]["parts"][0]["roles"]["tokens"]
    (out / "segments" / part).write_bytes(b"\0" * (out / "segments" / part).stat().st_size)
    assert main(["index", "verify", str(out)]) == 1
    capsys.readouterr()
    assert main(["index", "repair", str(out), "--multivector", str(tiny_mv_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["multivector"] == "rebuilt"
    assert main(["index", "verify", str(out)]) == 0
    capsys.readouterr()
    assert_same_hits(search_json(capsys, QUERY, *base, "--retrieval", "multivector"), expected)


def test_a_folder_that_is_not_colbert_is_refused_in_one_line_before_loading(tiny_st_dir, tmp_path, capsys,
                                                                             monkeypatch):
    import sentencekit.engines as engines

    real = engines.load_on_backend

    def dense_only(cls, *args, **kwargs):
        assert cls.__name__ == "SentenceTransformer", "the multi-vector model must not be loaded"
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(engines, "load_on_backend", dense_only)
    corpus, out = write_corpus(tmp_path / "c.jsonl"), tmp_path / "index"
    for argv in (["index", "build", str(corpus), "--out", str(out)],
                 ["search", "refund", "--corpus", str(corpus), "--cache-dir", str(tmp_path / "cache")]):
        assert main([*argv, "--model", str(tiny_st_dir), "--multivector", str(tiny_st_dir)]) == 1
        err = one_error_line(capsys)
        assert f"--multivector {tiny_st_dir} is not a multi-vector model" in err and "ColBERT" in err
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_another_colbert_model_than_the_index_s_is_refused_naming_both(tiny_st_dir, tiny_mv_dir, other_mv_dir,
                                                                       tmp_path, capsys):
    corpus, out = write_corpus(tmp_path / "c.jsonl"), tmp_path / "index"
    assert build(corpus, out, tiny_st_dir, "--multivector", str(tiny_mv_dir)) == 0
    capsys.readouterr()
    for argv in (["search", "refund", "--index", str(out), "--model", str(tiny_st_dir)],
                 ["index", "build", str(corpus), "--out", str(out), "--model", str(tiny_st_dir)],
                 ["index", "repair", str(out)]):
        assert main([*argv, "--multivector", str(other_mv_dir)]) == 1
        err = one_error_line(capsys)
        assert "was built with the multi-vector model" in err and "pass --multivector" in err
        assert str(Path(tiny_mv_dir).resolve()) in err and str(Path(other_mv_dir).resolve()) in err


def test_an_index_without_the_side_says_how_to_add_it(tiny_st_dir, tiny_mv_dir, library_index, tmp_path, capsys):
    corpus, out = write_corpus(tmp_path / "c.jsonl"), tmp_path / "index"
    assert build(corpus, out, tiny_st_dir) == 0
    capsys.readouterr()
    base = ["--index", str(out), "--model", str(tiny_st_dir)]
    for extra in (["--retrieval", "multivector"], ["--multivector", str(tiny_mv_dir)]):
        assert main(["search", "refund", *base, *extra]) == 1
        err = one_error_line(capsys)
        assert "keeps no multi-vector side" in err
        assert f"sentencekit index build CORPUS --out {out} --multivector MODEL" in err
    assert build(corpus, out, tiny_st_dir, "--multivector", str(tiny_mv_dir)) == 0  # adds the side
    assert "(0 added now)" in capsys.readouterr().out
    hits = search_json(capsys, QUERY, *base, "--retrieval", "multivector", "-k", "5")
    assert_same_hits(hits, library_hits(library_index, QUERY, retrieval="multivector"))


def test_a_recorded_model_that_is_gone_is_one_error_line(tiny_st_dir, tiny_mv_dir, tmp_path, capsys):
    model = tmp_path / "colbert-copy"
    shutil.copytree(tiny_mv_dir, model)
    corpus, out = write_corpus(tmp_path / "c.jsonl"), tmp_path / "index"
    assert build(corpus, out, tiny_st_dir, "--multivector", str(model)) == 0
    shutil.rmtree(model)
    capsys.readouterr()
    base = ["--index", str(out), "--model", str(tiny_st_dir), "--rerank", "none"]
    assert main(["search", "refund", *base, "--retrieval", "hybrid"]) == 1
    err = one_error_line(capsys)
    assert str(model) in err and "pass --multivector MODEL" in err
    # hybrid without the side (named weights) and dense search need no multi-vector model
    assert main(["search", "refund", *base]) == 0
    assert main(["search", "refund", *base, "--retrieval", "hybrid", "--fusion-weights", "dense=1,lexical=1"]) == 0
    capsys.readouterr()
    more = tmp_path / "more.jsonl"
    more.write_text(json.dumps({"id": "new", "text": "hello world"}) + "\n", encoding="utf-8")
    assert build(more, out, tiny_st_dir) == 1  # adding documents needs it
    assert "pass --multivector MODEL" in one_error_line(capsys)
    assert build(more, out, tiny_st_dir, "--multivector", str(tiny_mv_dir)) == 0  # the same model, elsewhere
    assert "(1 added now)" in capsys.readouterr().out


# -- search over the managed corpus index -------------------------------------------------------------------
def test_search_multivector_over_a_corpus(tiny_st_dir, tiny_mv_dir, library_index, tmp_path, capsys):
    corpus, cache = write_corpus(tmp_path / "c.jsonl"), tmp_path / "cache"
    common = ["--corpus", str(corpus), "--model", str(tiny_st_dir), "--cache-dir", str(cache), "-k", "5"]
    hits = search_json(capsys, QUERY, *common, "--multivector", str(tiny_mv_dir))
    assert_same_hits(hits, library_hits(library_index, QUERY, retrieval="multivector"))
    assert len(list(cache.iterdir())) == 1
    assert main(["search", QUERY, *common, "--multivector", str(tiny_mv_dir), "--rerank", "none"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "+ multivector model" in header and "embeddings reused" in header
    assert len(list(cache.iterdir())) == 1

    assert main(["search", QUERY, "--corpus", str(corpus), "--model", str(tiny_st_dir), "--retrieval",
                 "multivector"]) == 1
    assert "needs a multi-vector model: pass --multivector MODEL" in one_error_line(capsys)


def test_sparse_and_multivector_together_default_to_hybrid(tiny_st_dir, tiny_mv_dir, tiny_splade_dir, tmp_path,
                                                           capsys):
    corpus = write_corpus(tmp_path / "c.jsonl")
    hits = search_json(capsys, QUERY, "--corpus", str(corpus), "--model", str(tiny_st_dir), "--cache-dir",
                       str(tmp_path / "cache"), "--sparse", str(tiny_splade_dir), "--multivector", str(tiny_mv_dir),
                       "-k", "5")
    assert {"dense", "sparse", "multivector"} <= {side for h in hits for side in h["found_by"]}


# -- options ----------------------------------------------------------------------------------------------------
def test_multivector_options_are_in_help_and_the_fusion_sides_are_the_index_s():
    from sentencekit.cli import build_parser
    from sentencekit.cli_sides import SIDES
    from sentencekit.search.hybrid import SIDES as INDEX_SIDES

    assert SIDES == INDEX_SIDES
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    search_help = sub.choices["search"].format_help()
    assert "--multivector MODEL" in search_help and "{dense,lexical,sparse,multivector,hybrid}" in search_help
    index_sub = next(a for a in sub.choices["index"]._actions if isinstance(a, argparse._SubParsersAction))
    assert "--multivector MODEL" in index_sub.choices["build"].format_help()
    assert "--multivector MODEL" in index_sub.choices["repair"].format_help()
