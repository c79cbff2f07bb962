"""sentencekit.util search functions (semantic_search, paraphrase mining, community detection,
semantic_search_faiss) against brute-force NumPy computations."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

from sentencekit import util
from sentencekit.quantization import quantize_embeddings

RNG = np.random.default_rng(7)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def brute_top(queries: np.ndarray, corpus: np.ndarray, k: int, cosine: bool = True):
    q, c = np.asarray(queries, np.float64), np.asarray(corpus, np.float64)
    scores = unit(q) @ unit(c).T if cosine else q @ c.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, 1)


def clustered(n: int, dim: int, clusters: int, spread: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim))
    points = centers[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, dim))
    return unit(points).astype(np.float32)


def topics(n_topics: int, per_topic: int, dim: int, spread: float, n_queries: int, seed: int = 0):
    """Corpus of ``per_topic`` points around each topic centre, and queries near random centres, so a
    query's top ``per_topic`` neighbours are meaningful (its topic)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_topics, dim))
    corpus = np.repeat(centers, per_topic, 0) + spread * rng.standard_normal((n_topics * per_topic, dim))
    queries = centers[rng.integers(0, n_topics, n_queries)] + spread * rng.standard_normal((n_queries, dim))
    return unit(corpus).astype(np.float32), unit(queries).astype(np.float32)


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / len(t) for f, t in zip(found, truth)]))


# -- semantic_search ----------------------------------------------------------------------------
@pytest.mark.parametrize("query_chunk, corpus_chunk", [(100, 500000), (4, 10), (1, 1), (3, 57)])
def test_semantic_search_matches_brute_force_across_chunk_boundaries(query_chunk, corpus_chunk):
    corpus = RNG.standard_normal((57, 16)).astype(np.float32)
    queries = RNG.standard_normal((13, 16)).astype(np.float32)
    hits = util.semantic_search(queries, corpus, query_chunk_size=query_chunk, corpus_chunk_size=corpus_chunk,
                                top_k=5)
    ids, scores = brute_top(queries, corpus, 5)
    assert [[h["corpus_id"] for h in row] for row in hits] == ids.tolist()
    np.testing.assert_allclose([[h["score"] for h in row] for row in hits], scores, atol=1e-5)
    assert all(isinstance(h["corpus_id"], int) and isinstance(h["score"], float) for row in hits for h in row)


def test_semantic_search_inputs_top_k_larger_than_corpus_and_dot_score():
    corpus = RNG.standard_normal((6, 8)).astype(np.float32)
    query = RNG.standard_normal(8).astype(np.float32)
    expected, _ = brute_top(query[None], corpus, 6)
    inputs = [(query, corpus), (torch.from_numpy(query), torch.from_numpy(corpus)), (query.tolist(), corpus.tolist())]
    for q, c in inputs:
        hits = util.semantic_search(q, c, top_k=100, corpus_chunk_size=4)
        assert len(hits) == 1 and [h["corpus_id"] for h in hits[0]] == expected[0].tolist()
    dot_ids, dot_scores = brute_top(query[None], corpus, 3, cosine=False)
    hits = util.semantic_search(query, corpus, top_k=3, score_function=util.dot_score, corpus_chunk_size=2)
    assert [h["corpus_id"] for h in hits[0]] == dot_ids[0].tolist()
    np.testing.assert_allclose([h["score"] for h in hits[0]], dot_scores[0], rtol=1e-5)
    with pytest.raises(ValueError, match="dimension"):
        util.semantic_search(query[:4], corpus)


# -- paraphrase mining --------------------------------------------------------------------------
def brute_pairs(emb: np.ndarray, top_k: int, max_pairs: int) -> list[tuple[int, int]]:
    """Candidates = each entry's top_k other entries; the max_pairs best distinct pairs."""
    scores = unit(emb.astype(np.float64)) @ unit(emb.astype(np.float64)).T
    np.fill_diagonal(scores, -np.inf)
    pairs = {}
    for i in range(len(emb)):
        for j in [j for j in np.argsort(-scores[i], kind="stable") if j != i][:top_k]:
            pairs[(int(min(i, j)), int(max(i, j)))] = scores[i, j]
    best = sorted(pairs.items(), key=lambda kv: -kv[1])[:max_pairs]
    return [p for p, _ in best], [s for _, s in best]


@pytest.mark.parametrize("top_k, max_pairs", [(100, 10_000), (3, 10_000), (2, 15)])
def test_paraphrase_mining_embeddings_matches_brute_force(top_k, max_pairs):
    emb = RNG.standard_normal((40, 12)).astype(np.float32)
    emb[25] = emb[3]  # an exact duplicate: the best pair, and never a self pair
    result = util.paraphrase_mining_embeddings(emb, query_chunk_size=7, corpus_chunk_size=9, top_k=top_k,
                                               max_pairs=max_pairs)
    pairs, scores = brute_pairs(emb, top_k, max_pairs)
    assert [(i, j) for _, i, j in result] == pairs
    np.testing.assert_allclose([s for s, _, _ in result], scores, atol=1e-5)
    assert result[0][1:] == [3, 25]
    assert all(i < j for _, i, j in result)
    assert len({(i, j) for _, i, j in result}) == len(result)


def test_paraphrase_mining_with_model(tiny_model):
    sentences = ["the cat sat on the mat", "a cat sat on a mat", "refund policy", "my refund", "hello world"]
    pairs = util.paraphrase_mining(tiny_model, sentences, top_k=2, max_pairs=4)
    expected = util.paraphrase_mining_embeddings(tiny_model.encode(sentences), top_k=2, max_pairs=4)
    assert [p[1:] for p in pairs] == [p[1:] for p in expected]
    assert len(pairs) == 4


# -- community detection ------------------------------------------------------------------------
def test_community_detection_on_constructed_clusters():
    rng = np.random.default_rng(3)
    sizes = [12, 8, 5]
    centers = np.eye(64)[:3] * 10
    points = [c + 0.3 * rng.standard_normal((n, 64)) for c, n in zip(centers, sizes)]
    noise = 10 * rng.standard_normal((6, 64))
    emb = np.concatenate(points + [noise]).astype(np.float32)
    order = rng.permutation(len(emb))
    emb = emb[order]
    truth = [set(np.flatnonzero(np.isin(order, range(s, s + n))).tolist())
             for s, n in zip(np.cumsum([0] + sizes[:-1]), sizes)]

    communities = util.community_detection(emb, threshold=0.8, min_community_size=5, batch_size=7)
    assert [set(c) for c in communities] == truth  # largest first, exact membership, noise left out
    cos = unit(emb.astype(np.float64)) @ unit(emb.astype(np.float64)).T
    for community in communities:
        center, rest = community[0], community[1:]
        assert center == min(community)  # equal neighbour counts: the first proposal is the lowest index
        assert np.all(np.diff(cos[center, rest]) <= 1e-6)  # then by decreasing similarity to the centre
    assert util.community_detection(emb, threshold=0.8, min_community_size=13) == []
    assert util.community_detection(np.zeros((0, 4))) == []


def test_community_detection_removes_overlaps():
    # a chain a-b-c where b is close to both ends: b's community (largest) wins, the rest is dropped
    emb = np.array([[1.0, 0.0], [0.9, 0.44], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32)
    out = util.community_detection(emb, threshold=0.85, min_community_size=2)
    assert out == [[1, 0, 2]]
    assert len({i for c in out for i in c}) == sum(len(c) for c in out)


# -- semantic_search_faiss ----------------------------------------------------------------------
needs_faiss = pytest.mark.skipif(importlib.util.find_spec("faiss") is None, reason="faiss-cpu is not installed")


@needs_faiss
def test_faiss_float32_exact_equals_semantic_search():
    corpus = clustered(500, 32, 10, 0.5)
    queries = clustered(20, 32, 10, 0.5, seed=1)
    results, seconds, index = util.semantic_search_faiss(queries, corpus, top_k=7, output_index=True, rescore=False)
    expected = util.semantic_search(queries, corpus, top_k=7)
    assert [[h["corpus_id"] for h in r] for r in results] == [[h["corpus_id"] for h in r] for r in expected]
    assert seconds >= 0 and index.ntotal == 500
    # reuse the index, with a 1-D query
    again, _ = util.semantic_search_faiss(queries[0], corpus_index=index, top_k=3, rescore=False)
    assert [h["corpus_id"] for h in again[0]] == [h["corpus_id"] for h in expected[0][:3]]


@needs_faiss
def test_faiss_ubinary_rescore_and_hnsw_recall():
    corpus, queries = topics(500, 10, 128, 0.8, 100)
    truth, _ = brute_top(queries, corpus, 10)
    binary = quantize_embeddings(corpus, "ubinary")
    results, _ = util.semantic_search_faiss(queries, binary, corpus_precision="ubinary", top_k=10,
                                            rescore_multiplier=4)
    assert recall([[h["corpus_id"] for h in r] for r in results], truth) >= 0.9
    # rescored scores are float query . unpacked 0/1 bits, as in sentence-transformers
    bits = np.unpackbits(binary, axis=-1).astype(np.float64)
    first = results[0][0]
    assert first["score"] == pytest.approx(float(queries[0].astype(np.float64) @ bits[first["corpus_id"]]), rel=1e-5)
    hnsw, _ = util.semantic_search_faiss(queries, corpus, top_k=10, exact=False, rescore=False)
    assert recall([[h["corpus_id"] for h in r] for r in hnsw], truth) >= 0.9
    binary_hnsw, _ = util.semantic_search_faiss(queries, binary, corpus_precision="ubinary", top_k=10, exact=False,
                                                rescore_multiplier=4)
    assert recall([[h["corpus_id"] for h in r] for r in binary_hnsw], truth) >= 0.8


@needs_faiss
def test_faiss_uint8_follows_sentence_transformers_semantics():
    corpus = clustered(300, 16, 5, 0.5)
    queries = clustered(10, 16, 5, 0.5, seed=4)
    ranges = np.vstack([corpus.min(0), corpus.max(0)])
    codes = quantize_embeddings(corpus, "uint8", ranges=ranges)
    results, _ = util.semantic_search_faiss(queries, codes, corpus_precision="uint8", top_k=5, ranges=ranges)
    # by hand: uint8 inner-product candidates (top 10), rescored with float query . dequantized codes
    q_codes = quantize_embeddings(queries, "uint8", ranges=ranges).astype(np.float64)
    candidates = np.argsort(-(q_codes @ codes.astype(np.float64).T), axis=1, kind="stable")[:, :10]
    dequantized = codes * ((ranges[1] - ranges[0]) / 255) + ranges[0]
    for q, row in enumerate(results):
        scores = dequantized[candidates[q]] @ queries[q]
        expected = candidates[q][np.argsort(-scores, kind="stable")[:5]]
        assert sorted(h["corpus_id"] for h in row) == sorted(expected.tolist())
        assert row[0]["score"] == pytest.approx(float(scores.max()), rel=1e-4)
    no_rescore, _ = util.semantic_search_faiss(queries, codes, corpus_precision="uint8", top_k=3, ranges=ranges,
                                               rescore=False)
    assert all(len(r) == 3 for r in no_rescore)


@needs_faiss
def test_faiss_argument_errors_and_small_corpus():
    import faiss

    corpus = clustered(5, 16, 2, 0.1)
    with pytest.raises(ValueError, match="not both"):
        util.semantic_search_faiss(corpus, corpus, corpus_index=faiss.IndexFlatIP(16))
    with pytest.raises(ValueError, match="Either"):
        util.semantic_search_faiss(corpus)
    with pytest.raises(ValueError, match="corpus_precision"):
        util.semantic_search_faiss(corpus, corpus, corpus_precision="int4")
    # top_k * rescore_multiplier beyond the corpus: FAISS pads with -1, which never shows up
    results, _ = util.semantic_search_faiss(corpus, quantize_embeddings(corpus, "ubinary"),
                                            corpus_precision="ubinary", top_k=10)
    assert all(len(r) == 5 and all(h["corpus_id"] >= 0 for h in r) for r in results)


def test_faiss_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ImportError, match=r"pip install sentencekit\[faiss\]"):
        util.semantic_search_faiss(np.ones((1, 4)), np.ones((2, 4)))
