"""A multi-vector (ColBERT) model reranks wherever a cross-encoder does: `predict` on (query, document) pairs
equals `similarity_pairwise` of `encode_query` / `encode_document`, `rank` orders as CrossEncoder.rank does,
`EmbeddingIndex.search(reranker=...)` and the CLI's `rerank` / `search --rerank` take it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sentencekit import MultiVectorEncoder
from sentencekit.cli import main
from tests.test_cli import write_corpus

QUERIES = ["how do i get a refund", "reset my password"]
DOCS = ["refunds take ten days", "the cat sat on the mat", "click forgot password to reset it", "a"]


@pytest.fixture(scope="module")
def model(tiny_mv_dir):
    return MultiVectorEncoder(str(tiny_mv_dir), device="cpu")


def test_predict_is_maxsim_of_each_pair(model):
    pairs = [(q, d) for q in QUERIES for d in DOCS]
    scores = model.predict(pairs, batch_size=3)
    assert isinstance(scores, np.ndarray) and scores.dtype == np.float32 and scores.shape == (len(pairs),)
    expected = model.similarity(model.encode_query(QUERIES), model.encode_document(DOCS)).numpy().reshape(-1)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
    assert model.predict(pairs[2]) == pytest.approx(float(expected[2]), rel=1e-5)  # one pair: one float
    assert model.predict([]).shape == (0,)
    with pytest.raises(TypeError, match=r"sentences\[1\]"):
        model.predict([("q", "d"), "not a pair"])


def test_rank_orders_like_a_cross_encoder(model):
    scores = model.predict([(QUERIES[0], d) for d in DOCS])
    ranked = model.rank(QUERIES[0], DOCS, top_k=2, return_documents=True)
    best = np.argsort(-scores, kind="stable")[:2].tolist()
    assert [r["corpus_id"] for r in ranked] == best and [r["text"] for r in ranked] == [DOCS[i] for i in best]
    assert model.rank(QUERIES[0], []) == []
    with pytest.raises(ValueError, match="top_k"):
        model.rank(QUERIES[0], DOCS, top_k=0)
    with pytest.raises(TypeError, match="single string"):
        model.rank(QUERIES[0], DOCS[0])


def test_cli_rerank_and_search_take_a_colbert_model(model, tiny_st_dir, tiny_mv_dir, tmp_path, capsys):
    corpus = write_corpus(tmp_path / "docs.jsonl", DOCS)
    assert main(["rerank", QUERIES[0], str(corpus), "--model", str(tiny_mv_dir), "--json",
                 "--backend", "torch"]) == 0
    got = json.loads(capsys.readouterr().out)
    expected = model.rank(QUERIES[0], [f"T{i}\n{t}" for i, t in enumerate(DOCS)])  # titles on the first line
    assert [r["corpus_id"] for r in got] == [r["corpus_id"] for r in expected]
    assert got[0]["score"] == pytest.approx(expected[0]["score"], rel=1e-5)

    assert main(["search", QUERIES[0], "--corpus", str(corpus), "--model", str(tiny_st_dir), "--rerank",
                 str(tiny_mv_dir), "-k", "3", "--json", "--cache-dir", str(tmp_path / "cache"),
                 "--backend", "torch"]) == 0
    hits = json.loads(capsys.readouterr().out)[0]["results"]
    want = model.predict([(QUERIES[0], f"{h['title']}\n{h['text']}") for h in hits])
    np.testing.assert_allclose([h["score"] for h in hits], want, rtol=1e-5)
    assert all("retrieval_score" in h for h in hits)
