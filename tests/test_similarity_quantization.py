"""Similarity functions (model.similarity / similarity_pairwise and sentencekit.util) and
quantize_embeddings, against values computed by hand with NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sentencekit import SentenceTransformer, SimilarityFunction, quantize_embeddings, util
from sentencekit.modules import Normalize, Pooling, Transformer

RNG = np.random.default_rng(42)
A = RNG.standard_normal((3, 5)).astype(np.float32)
B = RNG.standard_normal((4, 5)).astype(np.float32)
C = RNG.standard_normal((3, 5)).astype(np.float32)  # same rows as A, for pairwise scores


def hand_all_pairs(name, a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.zeros((a.shape[0], b.shape[0]))
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            x, y = a[i], b[j]
            if name == "cosine":
                out[i, j] = (x @ y) / (np.sqrt(x @ x) * np.sqrt(y @ y))
            elif name == "dot":
                out[i, j] = x @ y
            elif name == "euclidean":
                out[i, j] = -np.sqrt(((x - y) ** 2).sum())
            elif name == "manhattan":
                out[i, j] = -np.abs(x - y).sum()
    return out


def hand_pairwise(name, a, b):
    return np.array([hand_all_pairs(name, a[i:i + 1], b[i:i + 1])[0, 0] for i in range(len(a))])


FUNCTIONS = ["cosine", "dot", "euclidean", "manhattan"]
CONVERTERS = {
    "numpy": lambda x: x,
    "tensor": torch.from_numpy,
    "list": lambda x: x.tolist(),
    "list_of_tensors": lambda x: list(torch.from_numpy(x)),
}


@pytest.fixture(scope="module")
def model(tiny_bert_dir):
    return SentenceTransformer(modules=[Transformer(str(tiny_bert_dir), max_seq_length=16), Pooling(32, "mean"),
                                        Normalize()], device="cpu")


def test_hand_values_differ_between_functions():
    results = [hand_all_pairs(n, A, B) for n in FUNCTIONS]
    for i in range(len(results)):
        for j in range(i + 1, len(results)):
            assert not np.allclose(results[i], results[j])


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("kind", list(CONVERTERS))
def test_model_similarity(model, name, kind):
    model.similarity_fn_name = name
    convert = CONVERTERS[kind]
    scores = model.similarity(convert(A), convert(B))
    assert isinstance(scores, torch.Tensor)
    assert tuple(scores.shape) == (3, 4)
    np.testing.assert_allclose(scores.double().numpy(), hand_all_pairs(name, A, B), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("kind", list(CONVERTERS))
def test_model_similarity_pairwise(model, name, kind):
    model.similarity_fn_name = name
    convert = CONVERTERS[kind]
    scores = model.similarity_pairwise(convert(A), convert(C))
    assert isinstance(scores, torch.Tensor)
    assert tuple(scores.shape) == (3,)
    np.testing.assert_allclose(scores.double().numpy(), hand_pairwise(name, A, C), rtol=1e-5, atol=1e-5)


def test_similarity_fn_name_default_aliases_and_enum(tiny_bert_dir):
    model = SentenceTransformer(modules=[Transformer(str(tiny_bert_dir), max_seq_length=16), Pooling(32, "mean")],
                                device="cpu")
    assert model.similarity_fn_name == "cosine"
    np.testing.assert_allclose(model.similarity(A, B).numpy(), hand_all_pairs("cosine", A, B), atol=1e-5)
    model.similarity_fn_name = SimilarityFunction.DOT_PRODUCT
    assert model.similarity_fn_name == "dot"
    model.similarity_fn_name = "dot_product"
    assert model.similarity_fn_name == "dot"
    with pytest.raises(ValueError, match="jaccard"):
        model.similarity_fn_name = "jaccard"
    with pytest.raises(ValueError):
        SentenceTransformer(modules=[Normalize()], similarity_fn_name="hamming", device="cpu")
    assert SentenceTransformer(modules=[Normalize()], similarity_fn_name=SimilarityFunction.MANHATTAN,
                               device="cpu").similarity_fn_name == "manhattan"


def test_similarity_of_real_embeddings(model):
    model.similarity_fn_name = "cosine"
    emb = model.encode(["hello world", "the cat sat on the mat", "refund"])
    scores = model.similarity(emb, emb).numpy()
    np.testing.assert_allclose(np.diag(scores), 1.0, atol=1e-5)
    np.testing.assert_allclose(scores, emb.astype(np.float64) @ emb.T.astype(np.float64), atol=1e-5)


@pytest.mark.parametrize(("fn", "name"), [
    (util.cos_sim, "cosine"), (util.pytorch_cos_sim, "cosine"), (util.dot_score, "dot"),
    (util.euclidean_sim, "euclidean"), (util.manhattan_sim, "manhattan"),
])
def test_util_all_pairs(fn, name):
    scores = fn(A, torch.from_numpy(B))
    assert isinstance(scores, torch.Tensor) and tuple(scores.shape) == (3, 4)
    np.testing.assert_allclose(scores.double().numpy(), hand_all_pairs(name, A, B), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("fn", "name"), [
    (util.pairwise_cos_sim, "cosine"), (util.pairwise_dot_score, "dot"),
    (util.pairwise_euclidean_sim, "euclidean"), (util.pairwise_manhattan_sim, "manhattan"),
])
def test_util_pairwise(fn, name):
    scores = fn(A.tolist(), C)
    assert tuple(scores.shape) == (3,)
    np.testing.assert_allclose(scores.double().numpy(), hand_pairwise(name, A, C), rtol=1e-5, atol=1e-5)


def test_one_dimensional_inputs_are_one_row():
    scores = util.cos_sim(A[0], B)
    assert tuple(scores.shape) == (1, 4)
    np.testing.assert_allclose(scores.numpy()[0], hand_all_pairs("cosine", A[:1], B)[0], atol=1e-5)
    assert tuple(util.dot_score(A[0], B[1]).shape) == (1, 1)


def test_half_precision_and_mixed_dtypes():
    half = torch.from_numpy(A).half()
    scores = util.cos_sim(half, half)
    assert scores.dtype in (torch.float32, torch.float64)
    np.testing.assert_allclose(np.diag(scores.numpy()), 1.0, atol=1e-3)
    mixed = util.dot_score(A.astype(np.float64), B)  # float64 with float32
    np.testing.assert_allclose(mixed.numpy(), hand_all_pairs("dot", A, B), rtol=1e-5, atol=1e-5)


def test_zero_vector_cosine_is_finite():
    scores = util.cos_sim(np.zeros((1, 5), dtype=np.float32), B)
    assert torch.isfinite(scores).all()


@pytest.mark.parametrize("fn", [util.cos_sim, util.dot_score, util.euclidean_sim, util.manhattan_sim,
                                util.pairwise_cos_sim, util.pairwise_dot_score, util.pairwise_euclidean_sim,
                                util.pairwise_manhattan_sim])
def test_dimension_mismatch(fn):
    with pytest.raises(ValueError, match="dimension"):
        fn(A, np.zeros((3, 6), dtype=np.float32))


def test_model_similarity_dimension_mismatch(model):
    model.similarity_fn_name = "cosine"
    with pytest.raises(ValueError):
        model.similarity(A, np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ValueError):
        model.similarity_pairwise(A, np.zeros((3, 4), dtype=np.float32))


def test_pairwise_row_count_mismatch():
    with pytest.raises(ValueError):
        util.pairwise_cos_sim(A, B)


def test_three_dimensional_input_is_refused():
    with pytest.raises(ValueError):
        util.cos_sim(np.zeros((2, 2, 5)), B)


def test_normalize_and_truncate_helpers():
    normed = util.normalize_embeddings(torch.from_numpy(A))
    np.testing.assert_allclose(normed.numpy(), A / np.linalg.norm(A, axis=1, keepdims=True), rtol=1e-5)
    np.testing.assert_array_equal(util.truncate_embeddings(A, 2), A[:, :2])


# -- quantization ----------------------------------------------------------------------------------

EMB = np.random.default_rng(7).uniform(-1.0, 1.0, size=(6, 12)).astype(np.float32)


def test_quantize_uint8_formula():
    got = quantize_embeddings(EMB, "uint8")
    lo, hi = EMB.min(axis=0), EMB.max(axis=0)
    steps = (hi - lo) / 255
    want = ((EMB - lo) / steps).astype(np.uint8)
    assert got.dtype == np.uint8 and got.shape == EMB.shape
    np.testing.assert_array_equal(got, want)
    # each dimension's minimum maps to bucket 0 and its maximum to (about) 255
    np.testing.assert_array_equal(got.min(axis=0), 0)
    assert (got.max(axis=0) >= 254).all()


def test_quantize_int8_formula():
    got = quantize_embeddings(EMB, "int8")
    lo, hi = EMB.min(axis=0), EMB.max(axis=0)
    # sentence-transformers v6: bucket = floor((x - min) / step) in 0..255, then shifted by -128
    want = (np.clip(np.floor((EMB - lo) / ((hi - lo) / 255)), 0, 255) - 128).astype(np.int8)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got.min(axis=0), -128)


def test_quantize_with_ranges():
    ranges = np.vstack([np.full(12, -1.0, dtype=np.float32), np.full(12, 1.0, dtype=np.float32)])
    got = quantize_embeddings(EMB, "int8", ranges=ranges)
    want = (np.clip(np.floor((EMB + 1.0) / np.float32(2.0 / 255)), 0, 255) - 128).astype(np.int8)
    np.testing.assert_array_equal(got, want)
    # the batch's own min/max would give other buckets: the ranges argument is used
    assert not np.array_equal(got, quantize_embeddings(EMB, "int8"))


def test_quantize_with_calibration_embeddings():
    calibration = np.random.default_rng(8).uniform(-2.0, 2.0, size=(50, 12)).astype(np.float32)
    lo, hi = calibration.min(axis=0), calibration.max(axis=0)
    got = quantize_embeddings(EMB, "uint8", calibration_embeddings=calibration)
    np.testing.assert_array_equal(got, np.clip(np.floor((EMB - lo) / ((hi - lo) / 255)), 0, 255).astype(np.uint8))
    assert not np.array_equal(got, quantize_embeddings(EMB, "uint8"))


def test_quantize_values_outside_ranges_saturate():
    ranges = np.vstack([np.full(12, -0.5, dtype=np.float32), np.full(12, 0.5, dtype=np.float32)])
    got_u = quantize_embeddings(EMB, "uint8", ranges=ranges)
    got_i = quantize_embeddings(EMB, "int8", ranges=ranges)
    np.testing.assert_array_equal(got_u[EMB > 0.5], 255)
    np.testing.assert_array_equal(got_u[EMB < -0.5], 0)
    np.testing.assert_array_equal(got_i[EMB > 0.5], 127)
    np.testing.assert_array_equal(got_i[EMB < -0.5], -128)


def test_quantize_constant_dimension_has_no_nan():
    emb = EMB.copy()
    emb[:, 3] = 0.25
    got = quantize_embeddings(emb, "uint8")
    np.testing.assert_array_equal(got[:, 3], 0)


def test_quantize_binary_and_ubinary():
    got_u = quantize_embeddings(EMB, "ubinary")
    want_u = np.packbits(EMB > 0, axis=-1)
    assert got_u.dtype == np.uint8 and got_u.shape == (6, 2)  # 12 bits -> 2 bytes (zero padded)
    np.testing.assert_array_equal(got_u, want_u)
    got_b = quantize_embeddings(EMB, "binary")
    assert got_b.dtype == np.int8 and got_b.shape == (6, 2)
    np.testing.assert_array_equal(got_b.astype(np.int16), want_u.astype(np.int16) - 128)


def test_quantize_binary_bits_by_hand():
    x = np.array([[0.5, -0.5, 1.0, -1.0, 0.1, 0.2, -0.3, 0.4, 0.0, 2.0]], dtype=np.float32)
    # bits 1,0,1,0,1,1,0,1 -> 0b10101101 = 173; then 0,1 padded -> 0b01000000 = 64 (0.0 is not > 0)
    np.testing.assert_array_equal(quantize_embeddings(x, "ubinary"), [[173, 64]])
    np.testing.assert_array_equal(quantize_embeddings(x, "binary"), [[173 - 128, 64 - 128]])


def test_quantize_accepts_tensors_lists_and_vectors():
    from_tensor = quantize_embeddings(torch.from_numpy(EMB), "ubinary")
    from_list = quantize_embeddings(list(torch.from_numpy(EMB)), "ubinary")
    want = np.packbits(EMB > 0, axis=-1)
    np.testing.assert_array_equal(from_tensor, want)
    np.testing.assert_array_equal(from_list, want)
    assert quantize_embeddings(EMB[0], "ubinary").shape == (2,)  # one vector stays 1-D


def test_quantize_float32_and_unknown_precision():
    got = quantize_embeddings(EMB.astype(np.float64), "float32")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, EMB)
    with pytest.raises(ValueError, match="int4"):
        quantize_embeddings(EMB, "int4")


def test_list_inputs_score_in_float32():
    scores = util.cos_sim([[1.0, 0.0]], [[0.0, 1.0]])
    assert scores.dtype == torch.float32


def test_int8_quantization_refuses_a_single_embedding_without_ranges():
    with pytest.raises(ValueError, match="single embedding"):
        quantize_embeddings(EMB[:1], "int8")
    assert quantize_embeddings(EMB[:1], "int8", calibration_embeddings=EMB).shape == (1, 12)
    with pytest.raises(TypeError, match="floats"):
        quantize_embeddings(quantize_embeddings(EMB, "int8"), "int8")
