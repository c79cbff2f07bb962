"""MaxSim / MeanMaxSim (late interaction), torch (sentencekit.late_interaction_tensors) and NumPy
(sentencekit.late_interaction) alike: the math on hand-made examples, masks (documents: left out of the max;
queries: weights of the sum), empty documents, every input form, chunking, pairwise scores, and the two
implementations agreeing on random ragged inputs."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from sentencekit import late_interaction as L
from sentencekit import late_interaction_tensors as T

Q = [np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32), np.array([[-1.0, 0.0]], dtype=np.float32)]
D = [np.array([[1.0, 0.0]], dtype=np.float32), np.array([[0.6, 0.8], [0.0, 1.0]], dtype=np.float32),
     np.array([[-0.5, -0.5], [0.0, -1.0], [0.3, 0.1]], dtype=np.float32)]
# by hand: sum over query tokens of the best document token
EXPECTED = np.array([[1.0 + 0.0, 0.6 + 1.0, 0.3 + 0.1], [-1.0, 0.0, 0.5]], dtype=np.float32)


def both(name, *args, **kwargs):
    """The torch and NumPy results of ``name`` (NumPy inputs for NumPy, tensors for torch)."""
    def tensors(x):
        if isinstance(x, list):
            return [torch.from_numpy(np.asarray(i)) for i in x]
        return torch.from_numpy(np.asarray(x)) if isinstance(x, np.ndarray) else x

    return getattr(T, name)(*[tensors(a) for a in args], **kwargs).numpy(), getattr(L, name)(*args, **kwargs)


@pytest.mark.parametrize("name", ["maxsim", "mean_maxsim"])
def test_all_pairs_by_hand(name):
    expected = EXPECTED / np.array([[2], [1]], dtype=np.float32) if name == "mean_maxsim" else EXPECTED
    for got in both(name, Q, D):
        assert got.dtype == np.float32 and got.shape == (2, 3)
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_pairwise_by_hand():
    for got in both("maxsim_pairwise", Q, D[:2]):
        np.testing.assert_allclose(got, [1.0, 0.0], atol=1e-6)
    for got in both("mean_maxsim_pairwise", Q, D[:2]):
        np.testing.assert_allclose(got, [0.5, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match="same number"):
        L.maxsim_pairwise(Q, D)
    with pytest.raises(ValueError, match="same number"):
        T.maxsim_pairwise([torch.from_numpy(q) for q in Q], [torch.from_numpy(d) for d in D])


def test_a_masked_document_token_never_wins_and_masked_query_tokens_weigh():
    d = np.array([[[-0.2, 0.0], [5.0, 5.0]]], dtype=np.float32)  # the second token is padding
    q = np.array([[[1.0, 0.0], [2.0, 0.0]]], dtype=np.float32)
    for got in both("maxsim", q, d, np.array([[1.0, 0.5]], dtype=np.float32), np.array([[1, 0]])):
        np.testing.assert_allclose(got, [[-0.2 - 0.4 * 0.5]], atol=1e-6)  # -0.2, not 0 (padding multiplied by 0)


def test_padded_3d_inputs_take_their_mask_from_all_zero_rows():
    padded_q = np.zeros((2, 3, 2), dtype=np.float32)
    padded_d = np.zeros((3, 4, 2), dtype=np.float32)
    for i, q in enumerate(Q):
        padded_q[i, :len(q)] = q
    for i, d in enumerate(D):
        padded_d[i, :len(d)] = d
    for got in both("maxsim", padded_q, padded_d):
        np.testing.assert_allclose(got, EXPECTED, atol=1e-6)
    for got in both("mean_maxsim", padded_q, padded_d):
        np.testing.assert_allclose(got, EXPECTED / np.array([[2], [1]]), atol=1e-6)


def test_empty_documents_score_minus_1e9_with_one_warning(caplog):
    L._warned_empty = T._warned_empty = False
    docs = [D[0], np.zeros((0, 2), dtype=np.float32)]
    with caplog.at_level(logging.WARNING):
        for got in both("maxsim", Q, docs):
            np.testing.assert_allclose(got[:, 1], [-1e9, -1e9])
            np.testing.assert_allclose(got[:, 0], EXPECTED[:, 0], atol=1e-6)
        for got in both("maxsim_pairwise", Q, docs):
            np.testing.assert_allclose(got, [1.0, -1e9])
    assert caplog.text.count("no scoreable token") == 2  # once per implementation
    masked = both("maxsim", Q, [D[1]], None, [np.array([0, 0])])
    for got in masked:
        np.testing.assert_allclose(got, [[-1e9], [-1e9]])


def test_single_matrices_integer_inputs_and_empty_sides():
    for got in both("maxsim", Q[0], D[1]):
        np.testing.assert_allclose(got, [[1.6]], atol=1e-6)
    ints = [np.array([[1, 2], [3, 0]], dtype=np.int8)]
    for got in both("maxsim", ints, ints):
        np.testing.assert_allclose(got, [[5.0 + 9.0]])
    for got in both("maxsim", [], D):
        assert got.shape == (0, 3)
    assert T.maxsim([], [torch.ones(2, 2)]).shape == (0, 1)


def test_chunks_give_the_same_scores_and_both_implementations_agree():
    rng = np.random.default_rng(0)
    queries = [rng.normal(size=(n, 8)).astype(np.float32) for n in rng.integers(1, 12, size=9)]
    docs = [rng.normal(size=(n, 8)).astype(np.float32) for n in rng.integers(1, 40, size=23)]
    reference = np.array([[(q @ d.T).max(axis=1).sum() for d in docs] for q in queries], dtype=np.float32)
    for chunk in (None, 50, 500, 10**9):
        for got in both("maxsim", queries, docs, chunk_elements=chunk):
            np.testing.assert_allclose(got, reference, atol=1e-4)
    for got in both("maxsim_pairwise", queries, docs[:9], chunk_elements=64):
        np.testing.assert_allclose(got, reference.diagonal(), atol=1e-4)


def test_bf16_scores_sum_in_float32_and_device_argument():
    q = [torch.randn(5, 8).bfloat16()]
    d = [torch.randn(7, 8).bfloat16()]
    got = T.maxsim(q, d, device="cpu")
    assert got.dtype == torch.float32
    expected = (q[0] @ d[0].T).max(dim=1).values.float().sum()
    torch.testing.assert_close(got[0, 0], expected)


def test_bad_shapes_and_masks_raise():
    with pytest.raises(ValueError, match=r"\[tokens, dim\]"):
        L.maxsim([np.ones(3)], D)
    with pytest.raises(ValueError, match="b_mask"):
        L.maxsim(Q, np.zeros((3, 4, 2)), b_mask=np.ones((3, 2)))
    with pytest.raises(ValueError, match="b_mask"):
        T.maxsim(torch.ones(1, 2, 2), torch.ones(3, 4, 2), b_mask=torch.ones(3, 2))
    with pytest.raises(ValueError, match="shape"):
        T.maxsim(torch.ones(1, 2, 2, 2), torch.ones(3, 4, 2))
