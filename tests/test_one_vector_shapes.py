"""Issue 12 item 5: one embedding ``[dim]`` stays one embedding. quantize_embeddings / normalize /
truncate keep 1-D; pairwise similarities of two vectors give one 0-d score; where sentence-transformers
itself promotes to 2-D (all-pairs cos_sim -> [1, 1], semantic_search -> one list per query) we do too."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sentencekit import util
from sentencekit.quantization import quantize_embeddings
from sentencekit.similarity import np_pairwise_similarity_fn, np_similarity_fn

RNG = np.random.default_rng(5)
EMB = RNG.standard_normal((6, 20)).astype(np.float32)
OTHER = RNG.standard_normal((6, 20)).astype(np.float32)


@pytest.mark.parametrize("precision, shape", [
    ("float32", (20,)), ("binary", (3,)), ("ubinary", (3,)),
])
def test_quantize_keeps_one_vector_1d(precision, shape):
    got = quantize_embeddings(EMB[0], precision)
    assert got.shape == shape
    np.testing.assert_array_equal(got, quantize_embeddings(EMB, precision)[0])
    assert quantize_embeddings(torch.from_numpy(EMB[0]), precision).shape == shape
    assert quantize_embeddings(EMB[0].tolist(), precision).shape == shape


@pytest.mark.parametrize("precision", ["int8", "uint8"])
def test_quantize_int8_of_one_vector_with_ranges_is_1d(precision):
    ranges = np.vstack((EMB.min(0), EMB.max(0)))
    got = quantize_embeddings(EMB[0], precision, ranges=ranges)
    assert got.shape == (20,)
    np.testing.assert_array_equal(got, quantize_embeddings(EMB, precision, ranges=ranges)[0])
    assert quantize_embeddings(EMB[0], precision, calibration_embeddings=EMB).shape == (20,)
    with pytest.raises(ValueError, match="single embedding"):
        quantize_embeddings(EMB[0], precision)


def test_quantize_refuses_other_shapes():
    with pytest.raises(ValueError, match=r"shape \(2, 3, 20\)"):
        quantize_embeddings(np.zeros((2, 3, 20), dtype=np.float32), "ubinary")


@pytest.mark.parametrize("precision", ["float32", "binary", "ubinary"])
def test_quantize_of_encode_matches_encode_with_precision(tiny_st_dir, precision):
    from sentencekit import SentenceTransformer

    model = SentenceTransformer(str(tiny_st_dir), device="cpu")
    direct = model.encode("hello world", precision=precision)
    after = quantize_embeddings(model.encode("hello world"), precision)
    assert direct.ndim == 1 and after.shape == direct.shape
    np.testing.assert_array_equal(after, direct)


PAIRWISE = [util.pairwise_cos_sim, util.pairwise_dot_score, util.pairwise_euclidean_sim,
            util.pairwise_manhattan_sim, util.pairwise_angle_sim]


@pytest.mark.parametrize("fn", PAIRWISE, ids=lambda f: f.__name__)
def test_pairwise_of_two_vectors_is_one_score(fn):
    rows = fn(EMB[:1], OTHER[:1])
    assert rows.shape == (1,)
    for a, b in [(EMB[0], OTHER[0]), (torch.from_numpy(EMB[0]), torch.from_numpy(OTHER[0])),
                 (EMB[0].tolist(), OTHER[0].tolist())]:
        one = fn(a, b)
        assert one.shape == ()
        torch.testing.assert_close(one, rows[0])
    assert fn(EMB[0], OTHER[:1]).shape == (1,)  # one side a batch: a batch of scores


@pytest.mark.parametrize("fn", [util.cos_sim, util.dot_score, util.euclidean_sim, util.manhattan_sim],
                         ids=lambda f: f.__name__)
def test_all_pairs_of_two_vectors_is_1x1_as_in_sentence_transformers(fn):
    assert fn(EMB[0], OTHER[0]).shape == (1, 1)
    assert fn(EMB[0], OTHER).shape == (1, 6)


@pytest.mark.parametrize("name", ["cosine", "dot", "euclidean", "manhattan"])
def test_numpy_similarity_follow_the_same_rule(name):
    one = np_pairwise_similarity_fn(name)(EMB[0], OTHER[0])
    assert np.shape(one) == ()
    np.testing.assert_allclose(one, np_pairwise_similarity_fn(name)(EMB[:1], OTHER[:1])[0], rtol=1e-6)
    assert np_similarity_fn(name)(EMB[0], OTHER[0]).shape == (1, 1)


def test_model_similarity_of_single_encodes(tiny_st_dir):
    from sentencekit import SentenceTransformer

    model = SentenceTransformer(str(tiny_st_dir), device="cpu")
    a, b = model.encode("hello world"), model.encode("the cat sat")
    assert model.similarity(a, b).shape == (1, 1)
    assert model.similarity_pairwise(a, b).shape == ()


def test_normalize_and_truncate_keep_one_vector_1d():
    one = util.normalize_embeddings(EMB[0])
    assert one.shape == (20,)
    torch.testing.assert_close(one, util.normalize_embeddings(EMB)[0])
    assert util.normalize_embeddings(EMB[0].tolist()).shape == (20,)
    assert util.normalize_embeddings(EMB).shape == (6, 20)
    assert util.truncate_embeddings(EMB[0], 8).shape == (8,)


def test_semantic_search_of_one_query_gives_one_list_as_in_sentence_transformers():
    hits = util.semantic_search(EMB[0], OTHER, top_k=2)
    assert len(hits) == 1 and len(hits[0]) == 2
