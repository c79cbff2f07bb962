"""sentence-transformers 6.2 behaviours of the sparse losses (and of the dense losses whose math they use) that
``benchmarks/sparse_loss_parity.py`` found missing or different, each checked here by hand, without the peer:
MNRL's directions / partition modes / hardness weighting, MarginMSE's score labels, the distillation
temperatures, MSE's per-column teachers, the row-wise AnglE similarity, exact triplet distances, CSR's
normalised MSE and dead-latent counting, the standalone errors and the cosine switch of the pair losses."""

from __future__ import annotations

import math

import pytest
import torch

from sentencekit import SparseEncoder
from sentencekit.losses import MSELoss, TripletDistanceMetric
from sentencekit.losses.sparse import (
    SparseAnglELoss,
    SparseCoSENTLoss,
    SparseCosineSimilarityLoss,
    SparseDistillKLDivLoss,
    SparseMarginMSELoss,
    SparseMultipleNegativesRankingLoss,
    SparseTripletLoss,
)
from sentencekit.losses.sparse.csr_loss import normalized_mse
from sentencekit.modules import SparseAutoEncoder
from sentencekit.similarity import pairwise_angle_sim

pytestmark = pytest.mark.unit

Q = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
P = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0], [2.0, 0.0, 0.0]])
N = torch.tensor([[0.0, 0.0, 1.0], [3.0, 0.0, 0.0], [0.0, 1.0, 1.0]])


def dot(a, b):
    return sum(x * y for x, y in zip(a.tolist(), b.tolist()))


def logsumexp(values):
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values if v != -math.inf))


def reference_mnrl(directions, partition_mode="joint", hardness_mode=None, strength=0.0, scale=1.0):
    """Row by row, from the definitions: query i's positive is P[i]; documents are P then N."""
    docs = [P, N]
    n = len(Q)
    total = 0.0
    for i in range(n):
        rows = {}
        q2d = []
        for c, column in enumerate(docs):
            for j in range(n):
                raw = dot(Q[i], column[j])
                own = j == i
                penalised = {"in_batch_negatives": not own, "hard_negatives": own and c > 0,
                             "all_negatives": not (own and c == 0), None: False}[hardness_mode]
                q2d.append(raw * scale + (strength * raw if penalised else 0.0))
        rows["query_to_doc"] = q2d
        if "query_to_query" in directions:
            rows["query_to_query"] = [-math.inf if j == i else dot(Q[i], Q[j]) * scale for j in range(n)]
        if "doc_to_query" in directions:
            rows["doc_to_query"] = [dot(P[i], Q[j]) * scale for j in range(n)]
        if "doc_to_doc" in directions:
            rows["doc_to_doc"] = [-math.inf if j == i else dot(P[i], column[j]) * scale
                                  for column in docs for j in range(n)]
        if partition_mode == "joint":
            log_z = logsumexp([v for row in rows.values() for v in row])
        else:
            log_z = sum(logsumexp(row) for row in rows.values()) / len(rows)
        total += log_z - q2d[i]
    return total / n


@pytest.mark.parametrize(("kwargs", "reference"), [
    ({}, {"directions": ("query_to_doc",)}),
    ({"scale": 0.7}, {"directions": ("query_to_doc",), "scale": 0.7}),
    ({"directions": ("query_to_doc", "doc_to_query")}, {"directions": ("query_to_doc", "doc_to_query")}),
    ({"directions": ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")},
     {"directions": ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")}),
    ({"directions": ("query_to_doc", "doc_to_query"), "partition_mode": "per_direction"},
     {"directions": ("query_to_doc", "doc_to_query"), "partition_mode": "per_direction"}),
    ({"hardness_mode": "in_batch_negatives", "hardness_strength": 0.5},
     {"directions": (), "hardness_mode": "in_batch_negatives", "strength": 0.5}),
    ({"hardness_mode": "hard_negatives", "hardness_strength": 0.5},
     {"directions": (), "hardness_mode": "hard_negatives", "strength": 0.5}),
    ({"hardness_mode": "all_negatives", "hardness_strength": 0.5, "directions": ("query_to_doc", "doc_to_doc")},
     {"directions": ("doc_to_doc",), "hardness_mode": "all_negatives", "strength": 0.5}),
])
def test_mnrl_directions_partitions_and_hardness_by_hand(kwargs, reference):
    loss = SparseMultipleNegativesRankingLoss(None, **kwargs)
    assert float(loss.compute_loss_from_embeddings([Q, P, N])) == pytest.approx(reference_mnrl(**reference), rel=1e-6)


def test_mnrl_hardness_weights_carry_no_gradient():
    # the penalty is strength * sim with the gradient stopped: d(loss)/d(sim) is that of the re-weighted softmax
    q = Q.clone().requires_grad_()
    SparseMultipleNegativesRankingLoss(None, hardness_mode="all_negatives", hardness_strength=2.0
                                       ).compute_loss_from_embeddings([q, P, N]).backward()
    expected = q.detach().clone().requires_grad_()
    scores = expected @ torch.cat([P, N]).T
    logits = scores + 2.0 * scores.detach() * (1 - torch.eye(3, 6))
    torch.nn.functional.cross_entropy(logits, torch.arange(3)).backward()
    torch.testing.assert_close(q.grad, expected.grad)


def test_mnrl_arguments_are_checked():
    for kwargs in ({"directions": ("doc_to_query",)}, {"directions": ()}, {"directions": ("query_to_doc", "x")},
                   {"partition_mode": "both"}, {"hardness_mode": "hardest"}, {"hardness_strength": -1.0},
                   {"scale": 0.0}, {"directions": ("query_to_doc", "doc_to_doc"), "partition_mode": "per_direction"}):
        with pytest.raises(ValueError):
            SparseMultipleNegativesRankingLoss(None, **kwargs)
    loss = SparseMultipleNegativesRankingLoss(None, directions=("query_to_doc", "doc_to_query"),
                                              partition_mode="per_direction")
    assert loss.get_config_dict() == {"scale": 1.0, "similarity_fct": "dot_score",
                                      "directions": ("query_to_doc", "doc_to_query"), "partition_mode": "per_direction"}
    # single process: gathering across devices has nothing to gather, the value is the plain one
    gathered = SparseMultipleNegativesRankingLoss(None, gather_across_devices=True)
    assert float(gathered.compute_loss_from_embeddings([Q, P, N])) == pytest.approx(reference_mnrl(("query_to_doc",)))


def test_margin_mse_takes_teacher_scores():
    scores = torch.tensor([[5.0, 1.0, 2.0], [0.0, 3.0, -1.0], [2.0, 2.0, 0.5]])  # T(q, p), T(q, n1), T(q, n2)
    loss = SparseMarginMSELoss(None)
    from_scores = loss.compute_loss_from_embeddings([Q, P, N, P], scores)
    from_margins = loss.compute_loss_from_embeddings([Q, P, N, P], scores[:, :1] - scores[:, 1:])
    assert float(from_scores) == pytest.approx(float(from_margins))
    student = torch.stack([(Q * P).sum(1) - (Q * N).sum(1), (Q * P).sum(1) - (Q * P).sum(1)], dim=1)
    assert float(from_scores) == pytest.approx(float(((student - (scores[:, :1] - scores[:, 1:])) ** 2).mean()))
    with pytest.raises(ValueError, match=r"labels of shape \(3, 3\) for a batch of 3 with 1 negative"):
        loss.compute_loss_from_embeddings([Q, P, N], torch.ones(3, 3))
    with pytest.raises(ValueError, match=r"labels of shape \(3,\) for a batch of 3 with 2 negative"):
        loss.compute_loss_from_embeddings([Q, P, N, N], torch.ones(3))


def test_distillation_temperatures():
    teacher = torch.tensor([[3.0, 1.0], [0.0, 2.0], [1.0, 1.0]])
    student = torch.stack([(Q * P).sum(1), (Q * N).sum(1)], dim=1)
    loss = SparseDistillKLDivLoss(None, temperature=3.0, student_temperature=2.0)  # teacher at 3, factor 2**2
    t = torch.softmax(teacher / 3.0, dim=1)
    expected = float((t * (t.log() - torch.log_softmax(student / 2.0, dim=1))).sum() / 3 * 4)
    assert float(loss.compute_loss_from_embeddings([Q, P, N], teacher)) == pytest.approx(expected, rel=1e-5)
    assert loss.get_config_dict() == {"similarity_fct": "pairwise_dot_score", "temperature": 3.0,
                                      "student_temperature": 2.0}
    for bad in ({"temperature": 0.0}, {"student_temperature": -1.0}, {"teacher_temperature": math.inf}):
        with pytest.raises(ValueError, match="positive finite"):
            SparseDistillKLDivLoss(None, **bad)
    with pytest.raises(ValueError, match="at least 3 columns"):
        loss.compute_loss_from_embeddings([Q, P], teacher[:, :1])


def test_mse_with_a_teacher_per_column():
    targets = torch.stack([N, P], dim=1)  # [batch, 2 columns, dim]
    expected = (((Q - N) ** 2).mean() + ((P - P) ** 2).mean()) / 2
    assert float(MSELoss(None).compute_loss_from_embeddings([Q, P], targets)) == pytest.approx(float(expected))
    with pytest.raises(ValueError, match="for 2 columns"):
        MSELoss(None).compute_loss_from_embeddings([Q, P, N], targets)
    with pytest.raises(ValueError, match=r"\[batch, dim\] or"):
        MSELoss(None).compute_loss_from_embeddings([Q], torch.ones(3))


def test_angle_similarity_is_row_wise():
    x = torch.tensor([[3.0, 0.0, 4.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    y = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    # row 0: cos 0.6; halves (0.6, 0) + i(0.8, 0) vs (1, 0): sine 0.8 * 1 -> 1.4; row 1: cos 0, sine -1 -> 1
    assert pairwise_angle_sim(x, y).tolist() == pytest.approx([1.4, 1.0])
    # a row does not depend on the others (sparse rows, all-zero columns: no 0 / 0)
    assert pairwise_angle_sim(x[:1], y[:1]).tolist() == pytest.approx([1.4])
    sparse_like = torch.zeros(2, 30522)
    sparse_like[0, [5, 20000]] = torch.tensor([1.0, 2.0])
    sparse_like[1, [7]] = 3.0
    assert torch.isfinite(pairwise_angle_sim(sparse_like, sparse_like.flip(0))).all()
    odd = torch.tensor([[1.0, 2.0, 3.0]])
    assert pairwise_angle_sim(odd, odd.flip(1)).tolist() == pytest.approx(
        pairwise_angle_sim(torch.tensor([[1.0, 2.0, 3.0, 0.0]]), torch.tensor([[3.0, 2.0, 1.0, 0.0]])).tolist())
    labels = torch.tensor([1.0, 0.0])
    loss = SparseAnglELoss(None).compute_loss_from_embeddings([sparse_like, sparse_like.flip(0)], labels)
    assert torch.isfinite(loss)


def test_triplet_distances_are_exact_norms():
    a = torch.zeros(1, 30522)
    b = torch.zeros(1, 30522)
    a[0, 3], b[0, 9] = 2.0, 1.0
    assert float(TripletDistanceMetric.MANHATTAN(a, b)) == 3.0  # no eps per coordinate (would add ~0.03)
    assert float(TripletDistanceMetric.EUCLIDEAN(a, b)) == pytest.approx(math.sqrt(5), abs=1e-7)
    loss = SparseTripletLoss(None, distance_metric=TripletDistanceMetric.MANHATTAN, triplet_margin=10)
    assert float(loss.compute_loss_from_embeddings([a, a, b])) == 7.0


def test_normalized_mse_by_hand():
    target = torch.tensor([[1.0, 2.0], [3.0, 6.0]])  # batch mean (2, 4): its error 1 and 4 per row -> 2.5
    reconstruction = torch.tensor([[1.0, 3.0], [3.0, 3.0]])  # errors 1 and 9 -> mse 2.5
    assert float(normalized_mse(reconstruction, target)) == pytest.approx(2.5 / 2.5)
    constant = torch.tensor([[1.0, 2.0], [1.0, 2.0]])  # no spread: the plain MSE
    assert float(normalized_mse(reconstruction, constant)) == pytest.approx(float(((reconstruction - constant) ** 2)
                                                                                  .mean()))


def test_autoencoder_with_normalize_and_statistics_only_on_training_steps():
    torch.manual_seed(0)
    sae = SparseAutoEncoder(input_dim=4, hidden_dim=8, k=2, k_aux=3, normalize=True, dead_threshold=0)
    with torch.no_grad():
        sae.pre_bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    x = torch.randn(3, 4) * 5 + 2
    sae.train()
    with torch.no_grad():  # not a training step: the statistics stay
        sae({"sentence_embedding": x})
    assert int(sae.stats_last_nonzero.sum()) == 0
    out = sae({"sentence_embedding": x})
    mean, std = x.mean(dim=1, keepdim=True), x.std(dim=1, keepdim=True)
    z = ((x - mean) / (std + 1e-5) - sae.pre_bias) @ sae.encoder.weight.T + sae.latent_bias
    top = torch.topk(z, 2, dim=1)
    code = torch.zeros_like(z).scatter(1, top.indices, top.values.relu())
    torch.testing.assert_close(out["decoded_embedding_k"], (code @ sae.encoder.weight + sae.pre_bias) * std + mean)
    torch.testing.assert_close(out["decoded_embedding_k_pre_bias"], out["decoded_embedding_k"] - sae.pre_bias * std)
    aux = out["auxiliary_embedding"]  # a residual's reconstruction: scaled, no mean
    torch.testing.assert_close(out["decoded_embedding_aux"], (aux @ sae.encoder.weight + sae.pre_bias) * std)
    torch.testing.assert_close(out["sentence_embedding_backbone"], x)


def test_pair_losses_switch_the_model_to_cosine(tiny_mlm_dir):
    for loss_class in (SparseCoSENTLoss, SparseAnglELoss, SparseCosineSimilarityLoss):
        model = SparseEncoder(str(tiny_mlm_dir), device="cpu")
        assert model.similarity_fn_name == "dot"
        loss_class(model)
        assert model.similarity_fn_name == "cosine", loss_class.__name__
    model = SparseEncoder(str(tiny_mlm_dir), device="cpu")
    SparseMarginMSELoss(model)
    assert model.similarity_fn_name == "dot"
