"""The multi-vector training scorers (``colbert_*``, ``mean_colbert_*``, ``xtr_*``, ``XTRScores``, ``XTRKDScores``):
values computed by hand on tiny token tensors, the query-major layout, masks, empty documents, XTR's top-k /
imputation / Z, gradients, chunking, and the names under ``sentencekit.multi_vector_encoder.scoring``."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from sentencekit.late_interaction_scoring import (
    colbert_kd_scores,
    colbert_scores,
    colbert_scores_pairwise,
    mean_colbert_kd_scores,
    mean_colbert_scores,
    mean_colbert_scores_pairwise,
)
from sentencekit.late_interaction_xtr import (
    XTRKDScores,
    XTRScores,
    is_xtr,
    xtr_kd_scores,
    xtr_scores,
    xtr_scores_pairwise,
)

pytestmark = pytest.mark.unit

E1, E2, E3 = torch.eye(3)


def by_hand_maxsim(query: torch.Tensor, document: torch.Tensor) -> float:
    """Sum over query tokens of the best dot product with any document token (plain loops)."""
    return sum(max(float(q @ d) for d in document) for q in query)


def random_batch(seed: int = 0, queries: int = 3, per_query: int = 2, q_tokens: int = 4, d_tokens: int = 5,
                 dim: int = 6):
    generator = torch.Generator().manual_seed(seed)
    q = torch.nn.functional.normalize(torch.randn(queries, q_tokens, dim, generator=generator), dim=-1)
    d = torch.nn.functional.normalize(torch.randn(queries, per_query, d_tokens, dim, generator=generator), dim=-1)
    return q, d


def test_colbert_scores_by_hand_and_query_major_layout():
    q, d = random_batch()
    scores = colbert_scores(q, d)
    assert scores.shape == (3, 6) and scores.dtype == torch.float32
    for i in range(3):
        for j in range(3):
            for n in range(2):
                assert float(scores[i, j * 2 + n]) == pytest.approx(by_hand_maxsim(q[i], d[j, n]), abs=1e-5)
    kd = colbert_kd_scores(q, d)
    assert kd.shape == (3, 2)
    torch.testing.assert_close(kd, torch.stack([scores[i, i * 2:i * 2 + 2] for i in range(3)]))
    torch.testing.assert_close(colbert_scores_pairwise(q, d[:, 1]), kd[:, 1])


def test_masks_drop_padding_and_mean_variants_divide_by_real_query_tokens():
    query = torch.stack([E1, E2, E3 * 0.5])[None]            # [1, 3, 3]
    documents = torch.stack([E1, E3, -E2])[None, None]        # [1, 1, 3, 3]
    q_mask = torch.tensor([[True, True, False]])
    d_mask = torch.tensor([[[True, False, True]]])            # E3 masked out: the third query token's best is gone
    # query tokens E1, E2 count; best matches: E1 -> 1, E2 -> max(0 with E1, -1 with -E2) = 0
    assert float(colbert_scores(query, documents, q_mask, d_mask)) == pytest.approx(1.0)
    assert float(mean_colbert_scores(query, documents, q_mask, d_mask)) == pytest.approx(0.5)
    assert float(mean_colbert_kd_scores(query, documents, q_mask, d_mask)) == pytest.approx(0.5)
    assert float(mean_colbert_scores_pairwise(query, documents[:, 0], q_mask, d_mask[:, 0])) == pytest.approx(0.5)
    # without masks all three query tokens and document tokens count: 1 + 0 + 0.5
    assert float(colbert_scores(query, documents)) == pytest.approx(1.5)
    assert float(mean_colbert_scores(query, documents, length_normalize=False)) == pytest.approx(1.5)


def test_masked_document_token_never_wins_over_a_negative_similarity():
    query = (-E1)[None, None]                                  # one token, every real similarity negative
    documents = torch.stack([E1, torch.zeros(3)])[None, None]   # a zero padding row, masked
    mask = torch.tensor([[[True, False]]])
    assert float(colbert_scores(query, documents, documents_mask=mask)) == pytest.approx(-1.0)


def test_empty_document_scores_minus_1e9():
    q, d = random_batch()
    mask = torch.ones(3, 2, 5, dtype=torch.bool)
    mask[1, 0] = False
    scores = colbert_scores(q, d, documents_mask=mask)
    assert torch.all(scores[:, 2] == -1e9) and torch.all(scores[:, 3] > -10)
    assert torch.all(xtr_scores(q, d, documents_mask=mask, top_k=3)[:, 2] == -1e9)


def test_gradients_reach_both_sides_and_chunking_keeps_values():
    q, d = random_batch(seed=1)
    q.requires_grad_(), d.requires_grad_()
    scores = colbert_scores(q, d)
    scores.sum().backward()
    assert q.grad is not None and d.grad is not None and float(q.grad.abs().sum()) > 0
    chunked = partial(colbert_scores, chunk_elements=40)(q.detach(), d.detach())
    torch.testing.assert_close(chunked, scores.detach())
    torch.testing.assert_close(xtr_scores(q.detach(), d.detach(), top_k=4, chunk_elements=50),
                               xtr_scores(q.detach(), d.detach(), top_k=4))


def test_xtr_by_hand():
    # query tokens E1, E2; document 0 = [E1], document 1 = [0.6 E1 + 0.8 E2]
    query = torch.stack([E1, E2])[None]
    documents = torch.stack([E1[None], (0.6 * E1 + 0.8 * E2)[None]])[None]  # [1, 2, 1, 3]
    # top_k=1: E1 retrieves document 0 (1.0), E2 retrieves document 1 (0.8); the other pairs are imputed 0
    # and Z counts the query tokens that retrieved the document (1 each)
    torch.testing.assert_close(xtr_scores(query, documents, top_k=1), torch.tensor([[1.0, 0.8]]))
    # top_k=2: every token retrieved by both query tokens: (1 + 0) / 2 and (0.6 + 0.8) / 2
    torch.testing.assert_close(xtr_scores(query, documents, top_k=2), torch.tensor([[0.5, 0.7]]))
    # a masked query token neither adds nor counts in Z
    torch.testing.assert_close(xtr_scores(query, documents, torch.tensor([[True, False]]), top_k=2),
                               torch.tensor([[1.0, 0.6]]))
    torch.testing.assert_close(xtr_kd_scores(query, documents, top_k=1), torch.tensor([[1.0, 0.8]]))
    # alone in its batch, document 1 is what both query tokens retrieve: (0.6 + 0.8) / 2
    torch.testing.assert_close(xtr_scores_pairwise(query, documents[:, 1], top_k=1), torch.tensor([0.7]))
    torch.testing.assert_close(XTRScores(1)(query, documents), xtr_scores(query, documents, top_k=1))
    torch.testing.assert_close(XTRKDScores(2)(query, documents), xtr_kd_scores(query, documents, top_k=2))


def test_xtr_top_k_is_global_over_the_batch_and_padding_is_never_retrieved():
    # two queries, one document each: query 0's only token retrieves from query 1's document with top_k=1
    queries = torch.stack([E1[None], E2[None]])                      # [2, 1, 3]
    documents = torch.stack([(0.5 * E1)[None, None], E1[None, None]])  # [2, 1, 1, 3]
    scores = xtr_scores(queries, documents, top_k=1)
    # query 0 (E1): similarities 0.5 (own) and 1.0 (other): only the other is retrieved, its own is imputed 0
    assert scores[0].tolist() == pytest.approx([0.0, 1.0])
    # a top_k larger than the real tokens reaches padding slots: they count for nothing (Z stays 1)
    padded = torch.cat([documents, torch.zeros(2, 1, 2, 3)], dim=2)
    mask = torch.tensor([[[True, False, False]], [[True, False, False]]])
    torch.testing.assert_close(xtr_scores(queries, padded, documents_mask=mask, top_k=6),
                               xtr_scores(queries, documents, top_k=2))


def test_xtr_gradient_reaches_only_retrieved_tokens():
    # document 1's token is its own best match (MaxSim would train it), but top_k=1 retrieves document 0's only
    query = E1[None, None].clone().requires_grad_()
    documents = torch.stack([E1[None], (0.9 * E1)[None]])[None].clone().requires_grad_()  # [1, 2, 1, 3]
    xtr_scores(query, documents, top_k=1).sum().backward()
    assert documents.grad[0, 0].abs().sum() > 0 and documents.grad[0, 1].abs().sum() == 0
    documents.grad = None
    colbert_scores(query, documents).sum().backward()
    assert documents.grad[0, 1].abs().sum() > 0


def test_errors_and_xtr_detection():
    q, d = random_batch()
    for top_k in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match="top_k"):
            xtr_scores(q, d, top_k=top_k)
    with pytest.raises(ValueError, match="4 dimensions"):
        colbert_scores(q, d[:, 0])
    assert is_xtr(xtr_scores) and is_xtr(XTRScores(8)) and is_xtr(partial(xtr_scores, top_k=4))
    assert is_xtr(XTRKDScores()) and not is_xtr(colbert_scores) and not is_xtr(partial(colbert_scores))
    assert XTRScores(8, chunk_elements=100).get_config_dict() == {"top_k": 8, "chunk_elements": 100}


def test_sentence_transformers_module_path():
    from sentencekit.multi_vector_encoder import scoring

    assert scoring.colbert_scores is colbert_scores and scoring.XTRKDScores is XTRKDScores
    assert sorted(scoring.__all__) == sorted(
        ["colbert_scores", "colbert_scores_pairwise", "colbert_kd_scores", "mean_colbert_scores",
         "mean_colbert_scores_pairwise", "mean_colbert_kd_scores", "XTRScores", "XTRKDScores", "xtr_scores",
         "xtr_scores_pairwise", "xtr_kd_scores"])
