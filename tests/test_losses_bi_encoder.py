"""Bi-encoder losses (sentencekit.losses): each learns a toy task, matches a hand computation, and the
wrappers (MatryoshkaLoss, AdaptiveLayerLoss) and GradCache (CachedMultipleNegativesRankingLoss) agree with
the plain losses."""

from __future__ import annotations

import copy
import json
import re

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from sentencekit import SentenceTransformer
from sentencekit import losses as L
from sentencekit.similarity import dot_score

ANCHORS = ["how do i get a refund", "what is the weather in paris today", "reset my password please",
           "cancel my subscription", "the cat sat on the mat", "my order shipping is late"]
POSITIVES = ["refund policy for a return", "paris weather is mild today", "password reset for my login",
             "cancel subscription and payment", "a cat sat on a mat", "delivery of my order is late"]
NEGATIVES = ["the dog is good", "phone number for support", "price of the card", "hello world test",
             "email thanks yes", "broken item help"]
# scored pairs: (text, text, score)
SCORED = [(a, p, 1.0) for a, p in zip(ANCHORS[:4], POSITIVES[:4])] + [
    (ANCHORS[0], POSITIVES[1], 0.1), (ANCHORS[1], NEGATIVES[2], 0.0), (ANCHORS[2], POSITIVES[4], 0.3),
    (ANCHORS[3], NEGATIVES[0], 0.2)]
# texts with class labels (for the batch triplet losses)
GROUPED = [("refund please", 0), ("money back for a return", 0), ("refund policy", 0),
           ("weather in paris", 1), ("sunny and mild today", 1), ("the weather is good", 1),
           ("reset my password", 2), ("login password help", 2), ("my account login", 2)]


def featurize(model: SentenceTransformer, columns: list[list[str]]) -> list[dict[str, Tensor]]:
    """What the trainer hands a loss: each column tokenized, without "truncated", on the model's device."""
    features = []
    for texts in columns:
        tokenized = model.tokenize(texts)
        tokenized.pop("truncated", None)
        features.append({k: v.to(model.device) if isinstance(v, Tensor) else v for k, v in tokenized.items()})
    return features


def embed(model: SentenceTransformer, features: list[dict[str, Tensor]]) -> list[Tensor]:
    with torch.no_grad():
        return [model(f)["sentence_embedding"] for f in features]


def value(loss: torch.nn.Module, features, labels) -> float:
    """Deterministic loss value (dropout off, no graph)."""
    was_training = loss.training
    loss.eval()
    with torch.no_grad():
        result = float(loss(features, labels))
    loss.train(was_training)
    return result


def assert_learns(loss: torch.nn.Module, features, labels, steps: int = 15, lr: float = 2e-3,
                  ratio: float = 0.8) -> None:
    """A few AdamW steps on one fixed batch lower the (dropout-free) loss clearly."""
    before = value(loss, features, labels)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(loss.parameters(), lr=lr)
    loss.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss(features, labels).backward()
        optimizer.step()
    after = value(loss, features, labels)
    assert after < ratio * before, f"{type(loss).__name__}: loss {before:.4f} -> {after:.4f}"


def grads(model: torch.nn.Module) -> dict[str, Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same_grads(a: dict[str, Tensor], b: dict[str, Tensor], atol: float = 1e-6) -> None:
    assert a.keys() == b.keys() and a
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=1e-4, msg=name)


@pytest.fixture()
def model(tiny_model: SentenceTransformer) -> SentenceTransformer:
    torch.manual_seed(0)
    return tiny_model


@pytest.fixture()
def triplets(model):
    return featurize(model, [ANCHORS, POSITIVES, NEGATIVES])


@pytest.fixture()
def pairs(model):
    return featurize(model, [ANCHORS, POSITIVES])


@pytest.fixture()
def scored(model):
    features = featurize(model, [[a for a, _, _ in SCORED], [b for _, b, _ in SCORED]])
    return features, torch.tensor([s for _, _, s in SCORED])


@pytest.fixture()
def grouped(model):
    return featurize(model, [[t for t, _ in GROUPED]]), torch.tensor([g for _, g in GROUPED])


# -- every loss learns its toy task --------------------------------------------------------------------
@pytest.mark.slow
def test_mnrl_learns(model, triplets):
    assert_learns(L.MultipleNegativesRankingLoss(model), triplets, None)


@pytest.mark.slow
def test_cached_mnrl_learns(model, triplets):
    assert_learns(L.CachedMultipleNegativesRankingLoss(model, mini_batch_size=4), triplets, None)


@pytest.mark.slow
def test_symmetric_mnrl_learns(model, pairs):
    assert_learns(L.MultipleNegativesSymmetricRankingLoss(model), pairs, None)


@pytest.mark.slow
def test_triplet_learns(model, triplets):
    loss = L.TripletLoss(model, distance_metric=L.TripletDistanceMetric.COSINE, triplet_margin=0.5)
    assert_learns(loss, triplets, None)


@pytest.mark.slow
def test_triplet_default_margin_learns(model, triplets):
    assert_learns(L.TripletLoss(model), triplets, None)  # margin 5 exceeds any distance of unit vectors


@pytest.mark.parametrize("make", [L.CosineSimilarityLoss, L.CoSENTLoss, L.AnglELoss])
@pytest.mark.slow
def test_scored_pair_losses_learn(model, scored, make):
    features, labels = scored
    assert_learns(make(model), features, labels)


@pytest.mark.parametrize("make", [L.ContrastiveLoss, L.OnlineContrastiveLoss])
@pytest.mark.slow
def test_contrastive_losses_learn(model, scored, make):
    features, _ = scored
    # Label the currently closest pairs as dissimilar and the farthest as similar: the pairs are then
    # "hard" for any random model, so OnlineContrastiveLoss (hard pairs only) has something to learn.
    with torch.no_grad():
        a, b = (model(f)["sentence_embedding"] for f in features)
        distance = 1 - F.cosine_similarity(a, b)
    labels = (distance > distance.median()).long()
    assert_learns(make(model), features, labels)


@pytest.mark.slow
def test_softmax_loss_learns(model, scored):
    features, labels = scored
    classes = torch.tensor([0, 0, 0, 0, 1, 2, 1, 2])
    loss = L.SoftmaxLoss(model, model.get_sentence_embedding_dimension(), num_labels=3)
    assert any(p is loss.classifier.weight for p in loss.parameters())  # the classifier trains with the loss
    assert_learns(loss, features, classes)


@pytest.mark.slow
def test_mse_learns(model, pairs):
    torch.manual_seed(1)
    teacher = F.normalize(torch.randn(len(ANCHORS), 32), dim=1)
    assert_learns(L.MSELoss(model), pairs, teacher)
    assert_learns(L.MSELoss(model), pairs[:1], teacher)


@pytest.mark.slow
def test_margin_mse_learns(model, triplets):
    assert_learns(L.MarginMSELoss(model), triplets, torch.full((len(ANCHORS),), 0.8))


@pytest.mark.slow
def test_margin_mse_multiple_negatives_learns(model):
    features = featurize(model, [ANCHORS, POSITIVES, NEGATIVES, NEGATIVES[::-1]])
    assert_learns(L.MarginMSELoss(model), features, torch.tensor([[0.8, 0.6]] * len(ANCHORS)))


@pytest.mark.slow
def test_distill_kl_div_learns(model):
    features = featurize(model, [ANCHORS, POSITIVES, NEGATIVES, NEGATIVES[::-1]])
    teacher = torch.tensor([[4.0, 0.0, 1.0]] * len(ANCHORS))
    assert_learns(L.DistillKLDivLoss(model, temperature=0.2), features, teacher)


@pytest.mark.parametrize("make", [L.BatchHardTripletLoss, L.BatchAllTripletLoss])
@pytest.mark.parametrize(("distance", "margin"), [
    (L.BatchHardTripletLossDistanceFunction.eucledian_distance, 0.5),
    (L.BatchHardTripletLossDistanceFunction.cosine_distance, 0.3),
])
@pytest.mark.slow
def test_batch_triplet_losses_learn(model, grouped, make, distance, margin):
    features, labels = grouped
    assert_learns(make(model, distance_metric=distance, margin=margin), features, labels)


@pytest.mark.slow
def test_matryoshka_learns(model, triplets, scored):
    assert_learns(L.MatryoshkaLoss(model, L.MultipleNegativesRankingLoss(model), [32, 16, 8]), triplets, None)
    features, labels = scored
    assert_learns(L.MatryoshkaLoss(model, L.CoSENTLoss(model), [32, 16, 8]), features, labels)


@pytest.mark.slow
def test_matryoshka_cached_learns(model, triplets):
    inner = L.CachedMultipleNegativesRankingLoss(model, mini_batch_size=4)
    assert_learns(L.MatryoshkaLoss(model, inner, [32, 16]), triplets, None)


@pytest.mark.slow
def test_adaptive_layer_learns(model, triplets):
    assert_learns(L.AdaptiveLayerLoss(model, L.MultipleNegativesRankingLoss(model)), triplets, None)


# -- values against hand computations --------------------------------------------------------------------
def test_mnrl_value(model, triplets):
    model.eval()
    a, p, n = embed(model, triplets)
    candidates = torch.cat([p, n])
    cos = F.normalize(a, dim=1) @ F.normalize(candidates, dim=1).T
    expected = F.cross_entropy(20.0 * cos, torch.arange(len(a)))
    assert value(L.MultipleNegativesRankingLoss(model), triplets, None) == pytest.approx(float(expected), rel=1e-5)
    dot = L.MultipleNegativesRankingLoss(model, scale=1.0, similarity_fct=dot_score)
    expected_dot = F.cross_entropy(a @ candidates.T, torch.arange(len(a)))
    assert value(dot, triplets, None) == pytest.approx(float(expected_dot), rel=1e-5)


def test_symmetric_mnrl_value(model, pairs):
    model.eval()
    a, p = embed(model, pairs)
    cos = 20.0 * F.normalize(a, dim=1) @ F.normalize(p, dim=1).T
    target = torch.arange(len(a))
    expected = (F.cross_entropy(cos, target) + F.cross_entropy(cos.T, target)) / 2
    loss = L.MultipleNegativesSymmetricRankingLoss(model)
    assert value(loss, pairs, None) == pytest.approx(float(expected), rel=1e-5)


def test_cosent_value(model, scored):
    model.eval()
    features, labels = scored
    u, v = embed(model, features)
    cos = F.cosine_similarity(u, v).tolist()
    terms = [20.0 * (cos[i] - cos[j]) for i in range(len(cos)) for j in range(len(cos)) if labels[i] < labels[j]]
    expected = torch.logsumexp(torch.tensor([0.0, *terms], dtype=torch.float64), dim=0)
    assert value(L.CoSENTLoss(model), features, labels) == pytest.approx(float(expected), rel=1e-4)


def test_angle_is_cosent_with_angle_similarity(model, scored):
    from sentencekit.similarity import pairwise_angle_sim

    features, labels = scored
    expected = value(L.CoSENTLoss(model, similarity_fct=pairwise_angle_sim), features, labels)
    assert value(L.AnglELoss(model), features, labels) == pytest.approx(expected, rel=1e-6)
    assert L.AnglELoss(model).get_config_dict() == {"scale": 20.0, "similarity_fct": "pairwise_angle_sim"}


def test_cosine_similarity_value(model, scored):
    model.eval()
    features, labels = scored
    u, v = embed(model, features)
    expected = ((F.cosine_similarity(u, v) - labels) ** 2).mean()
    assert value(L.CosineSimilarityLoss(model), features, labels) == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize(("metric", "distance"), [
    (L.TripletDistanceMetric.EUCLIDEAN, lambda x, y: (x - y).norm(dim=1)),
    (L.TripletDistanceMetric.MANHATTAN, lambda x, y: (x - y).abs().sum(dim=1)),
    (L.TripletDistanceMetric.COSINE, lambda x, y: 1 - F.cosine_similarity(x, y)),
])
def test_triplet_value(model, triplets, metric, distance):
    model.eval()
    a, p, n = embed(model, triplets)
    expected = torch.relu(distance(a, p) - distance(a, n) + 5).mean()
    assert value(L.TripletLoss(model, distance_metric=metric), triplets, None) == pytest.approx(
        float(expected), abs=1e-4)


def test_contrastive_value(model, scored):
    model.eval()
    features, scores = scored
    labels = (scores > 0.5).float()
    u, v = embed(model, features)
    d = 1 - F.cosine_similarity(u, v)
    per_pair = 0.5 * (labels * d**2 + (1 - labels) * torch.relu(0.5 - d) ** 2)
    assert value(L.ContrastiveLoss(model), features, labels) == pytest.approx(float(per_pair.mean()), rel=1e-5)
    summed = L.ContrastiveLoss(model, size_average=False)
    assert value(summed, features, labels) == pytest.approx(float(per_pair.sum()), rel=1e-5)


def test_online_contrastive_value(model, scored):
    model.eval()
    features, scores = scored
    labels = (scores > 0.5).long()
    u, v = embed(model, features)
    d = (1 - F.cosine_similarity(u, v)).tolist()
    pos = [x for x, y in zip(d, labels) if y == 1]
    neg = [x for x, y in zip(d, labels) if y == 0]
    expected = sum(x**2 for x in pos if x > min(neg)) + sum(max(0.0, 0.5 - x) ** 2 for x in neg if x < max(pos))
    assert value(L.OnlineContrastiveLoss(model), features, labels) == pytest.approx(expected, rel=1e-4, abs=1e-7)


def test_mse_value(model, pairs):
    model.eval()
    teacher = torch.randn(len(ANCHORS), 48)  # wider than the student: cut to its 32 dimensions
    a, p = embed(model, pairs)
    expected = (((a - teacher[:, :32]) ** 2).mean() + ((p - teacher[:, :32]) ** 2).mean()) / 2
    assert value(L.MSELoss(model), pairs, teacher) == pytest.approx(float(expected), rel=1e-5)


def test_margin_mse_value(model, triplets):
    model.eval()
    q, p, n = embed(model, triplets)
    margins = torch.linspace(-1, 1, len(ANCHORS))
    expected = (((q * p).sum(1) - (q * n).sum(1) - margins) ** 2).mean()
    assert value(L.MarginMSELoss(model), triplets, margins) == pytest.approx(float(expected), rel=1e-5)


def test_distill_kl_div_value(model, triplets):
    model.eval()
    q, p, n = embed(model, triplets)
    teacher = torch.tensor([[2.0, 0.5]] * len(ANCHORS))
    t = 2.0
    student = torch.stack([(q * p).sum(1), (q * n).sum(1)], dim=1) / t
    target = torch.softmax(teacher / t, dim=1)
    expected = (target * (target.log() - torch.log_softmax(student, dim=1))).sum() / len(q) * t**2
    loss = L.DistillKLDivLoss(model, temperature=t)
    assert value(loss, triplets, teacher) == pytest.approx(float(expected), rel=1e-5)


def test_softmax_loss_value(model, scored):
    model.eval()
    features, _ = scored
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    loss = L.SoftmaxLoss(model, 32, 3, concatenation_sent_multiplication=True)
    u, v = embed(model, features)
    with torch.no_grad():
        logits = loss.classifier(torch.cat([u, v, (u - v).abs(), u * v], dim=1))
    assert loss.classifier.in_features == 4 * 32
    assert value(loss, features, labels) == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-5)


def _pairwise_distances(e: Tensor) -> Tensor:
    return torch.stack([torch.stack([(x - y).norm() for y in e]) for x in e])


def test_batch_hard_triplet_value(model, grouped):
    model.eval()
    features, labels = grouped
    (e,) = embed(model, features)
    d = _pairwise_distances(e)
    n = len(e)
    expected = []
    for i in range(n):
        hardest_pos = max(d[i, j] for j in range(n) if j != i and labels[j] == labels[i])
        hardest_neg = min(d[i, k] for k in range(n) if labels[k] != labels[i])
        expected.append(max(0.0, float(hardest_pos - hardest_neg) + 0.5))
    loss = L.BatchHardTripletLoss(model, margin=0.5)
    assert value(loss, features, labels) == pytest.approx(sum(expected) / n, abs=1e-5)


def test_batch_all_triplet_value(model, grouped):
    model.eval()
    features, labels = grouped
    (e,) = embed(model, features)
    d = _pairwise_distances(e)
    n = len(e)
    terms = [max(0.0, float(d[i, j] - d[i, k]) + 0.5) for i in range(n) for j in range(n) for k in range(n)
             if len({i, j, k}) == 3 and labels[i] == labels[j] and labels[i] != labels[k]]
    positive = [t for t in terms if t > 1e-16]
    loss = L.BatchAllTripletLoss(model, margin=0.5)
    assert value(loss, features, labels) == pytest.approx(sum(positive) / len(positive), abs=1e-5)


# -- CachedMultipleNegativesRankingLoss = MultipleNegativesRankingLoss ------------------------------------
def _loss_and_grads(model, loss, features, labels=None):
    model.zero_grad()
    result = loss(features, labels)
    result.backward()
    return float(result.detach()), grads(model)


@pytest.mark.parametrize("mini_batch_size", [1, 4])
def test_cached_mnrl_matches_mnrl(model, triplets, mini_batch_size):
    model.eval()  # no dropout: both losses see identical embeddings
    plain_value, plain_grads = _loss_and_grads(model, L.MultipleNegativesRankingLoss(model), triplets)
    cached = L.CachedMultipleNegativesRankingLoss(model, mini_batch_size=mini_batch_size)
    cached_value, cached_grads = _loss_and_grads(model, cached, triplets)
    assert cached_value == pytest.approx(plain_value, rel=1e-5)
    assert_same_grads(cached_grads, plain_grads)
    with torch.no_grad():  # evaluation path: value only
        assert float(cached(triplets, None)) == pytest.approx(plain_value, rel=1e-5)
    assert float(cached.compute_loss_from_embeddings(embed(model, triplets))) == pytest.approx(plain_value, rel=1e-5)


def test_cached_mnrl_replays_dropout(model, pairs):
    # In train mode the second (graph) pass must draw the same dropout masks as the first: with one
    # mini-batch per column both losses consume the RNG alike, so they agree exactly.
    model.train()
    torch.manual_seed(123)
    plain_value, plain_grads = _loss_and_grads(model, L.MultipleNegativesRankingLoss(model), pairs)
    torch.manual_seed(123)
    cached = L.CachedMultipleNegativesRankingLoss(model, mini_batch_size=len(ANCHORS))
    cached_value, cached_grads = _loss_and_grads(model, cached, pairs)
    assert cached_value == pytest.approx(plain_value, rel=1e-5)
    assert_same_grads(cached_grads, plain_grads)


def test_cached_mnrl_scales_with_grad_output(model, pairs):
    model.eval()
    cached = L.CachedMultipleNegativesRankingLoss(model, mini_batch_size=2)
    model.zero_grad()
    (cached(pairs, None) * 3).backward()
    tripled = grads(model)
    _, plain = _loss_and_grads(model, L.MultipleNegativesRankingLoss(model), pairs)
    assert_same_grads(tripled, {k: 3 * v for k, v in plain.items()}, atol=1e-5)


# -- MatryoshkaLoss -----------------------------------------------------------------------------------------
DIMS, WEIGHTS = [8, 32, 16], [0.25, 1.0, 0.5]  # given unsorted on purpose


def _mnrl_by_hand(embeddings: list[Tensor]) -> Tensor:
    a, c = F.normalize(embeddings[0], dim=1), F.normalize(torch.cat(embeddings[1:]), dim=1)
    return F.cross_entropy(20.0 * a @ c.T, torch.arange(len(a)))


def test_matryoshka_mnrl_value(model, triplets):
    model.eval()
    full = embed(model, triplets)
    expected = sum(w * _mnrl_by_hand([F.normalize(e[:, :d], dim=1) for e in full]) for d, w in zip(DIMS, WEIGHTS))
    loss = L.MatryoshkaLoss(model, L.MultipleNegativesRankingLoss(model), DIMS, WEIGHTS)
    assert loss.matryoshka_dims == (32, 16, 8) and loss.matryoshka_weights == (1.0, 0.5, 0.25)
    assert value(loss, triplets, None) == pytest.approx(float(expected), rel=1e-5)


def test_matryoshka_cosent_value(model, scored):
    model.eval()
    features, labels = scored
    u, v = embed(model, features)
    inner = L.CoSENTLoss(model)
    expected = sum(w * float(inner.compute_loss_from_embeddings(
        [F.normalize(u[:, :d], dim=1), F.normalize(v[:, :d], dim=1)], labels)) for d, w in zip(DIMS, WEIGHTS))
    loss = L.MatryoshkaLoss(model, inner, DIMS, WEIGHTS)
    assert value(loss, features, labels) == pytest.approx(expected, rel=1e-5)


def test_matryoshka_does_not_patch_the_model(model, triplets):
    seen = []
    model.network.register_forward_hook(lambda module, args, out: seen.append("forward" in vars(module)))
    inners = [L.MultipleNegativesRankingLoss(model), L.CachedMultipleNegativesRankingLoss(model, mini_batch_size=2)]
    for inner in inners:
        loss = L.MatryoshkaLoss(model, inner, [32, 16])
        loss(triplets, None).backward()
    assert seen and not any(seen)  # never an instance-level forward, not even during the loss
    assert type(model).forward is SentenceTransformer.forward
    assert "forward" not in vars(model) and "forward" not in vars(model.network)


def test_matryoshka_embeds_once_per_column(model, triplets):
    calls = []
    handle = model.network.register_forward_hook(lambda *args: calls.append(1))
    L.MatryoshkaLoss(model, L.MultipleNegativesRankingLoss(model), [32, 16, 8])(triplets, None)
    handle.remove()
    assert len(calls) == 3


def test_matryoshka_cached_matches_uncached(model, triplets):
    model.eval()
    plain = L.MatryoshkaLoss(model, L.MultipleNegativesRankingLoss(model), DIMS, WEIGHTS)
    plain_value, plain_grads = _loss_and_grads(model, plain, triplets)
    cached = L.MatryoshkaLoss(model, L.CachedMultipleNegativesRankingLoss(model, mini_batch_size=4), DIMS, WEIGHTS)
    cached_value, cached_grads = _loss_and_grads(model, cached, triplets)
    assert cached_value == pytest.approx(plain_value, rel=1e-5)
    assert_same_grads(cached_grads, plain_grads)
    with torch.no_grad():
        assert float(cached(triplets, None)) == pytest.approx(plain_value, rel=1e-5)


def test_matryoshka_n_dims_per_step(model, triplets):
    model.eval()
    inner = L.MultipleNegativesRankingLoss(model)
    singles = {d: value(L.MatryoshkaLoss(model, inner, [d]), triplets, None) for d in (32, 16, 8)}
    sampled = L.MatryoshkaLoss(model, inner, [32, 16, 8], n_dims_per_step=1)
    for _ in range(5):
        got = value(sampled, triplets, None)  # one sampled dimension per call
        assert any(got == pytest.approx(v, rel=1e-5) for v in singles.values())


def test_matryoshka_errors(model):
    inner = L.MultipleNegativesRankingLoss(model)
    with pytest.raises(ValueError, match="exceed"):
        L.MatryoshkaLoss(model, inner, [64, 32])
    with pytest.raises(ValueError, match="same length"):
        L.MatryoshkaLoss(model, inner, [32, 16], [1.0])
    with pytest.raises(ValueError, match="at least one"):
        L.MatryoshkaLoss(model, inner, [])
    with pytest.raises(TypeError, match="AdaptiveLayerLoss"):
        L.MatryoshkaLoss(model, L.AdaptiveLayerLoss(model, inner), [32, 16])


# -- AdaptiveLayerLoss --------------------------------------------------------------------------------------
def test_adaptive_layer_value(model, triplets):
    # The tiny model has 2 layers: the prior layer is layer 1, whose embeddings are those of a copy of the
    # model cut to its first layer.
    model.eval()
    full = embed(model, triplets)
    shallow = copy.deepcopy(model)
    encoder = shallow[0].auto_model.encoder
    encoder.layer = encoder.layer[:1]
    layer1 = embed(shallow, triplets)
    t = 0.3
    kl = F.kl_div(F.log_softmax(torch.cat(layer1) / t, dim=-1), F.softmax(torch.cat(full) / t, dim=-1),
                  reduction="batchmean")
    expected = 2.0 * _mnrl_by_hand(full) + 0.5 * _mnrl_by_hand(layer1) / 1 / 1 + kl * t * 1.5
    loss = L.AdaptiveLayerLoss(model, L.MultipleNegativesRankingLoss(model), last_layer_weight=2.0,
                               prior_layers_weight=0.5, kl_div_weight=1.5)
    assert value(loss, triplets, None) == pytest.approx(float(expected), rel=1e-5)
    no_kl = L.AdaptiveLayerLoss(model, L.MultipleNegativesRankingLoss(model), kl_temperature=0)
    assert value(no_kl, triplets, None) == pytest.approx(float(_mnrl_by_hand(full) + _mnrl_by_hand(layer1)),
                                                         rel=1e-5)


def test_adaptive_layer_samples_layers(tmp_path, triplets):
    from sentencekit.modules import Normalize, Pooling, Transformer
    from tests.conftest import build_tiny_bert

    folder = build_tiny_bert(tmp_path / "bert4", layers=4, seed=3)
    deep = SentenceTransformer(modules=[Transformer(str(folder)), Pooling(32, "mean"), Normalize()], device="cpu")
    features = featurize(deep, [ANCHORS, POSITIVES, NEGATIVES])
    loss = L.AdaptiveLayerLoss(deep, L.MultipleNegativesRankingLoss(deep), n_layers_per_step=2)
    loss(features, None).backward()
    assert value(L.AdaptiveLayerLoss(deep, L.MultipleNegativesRankingLoss(deep), n_layers_per_step=-1),
                 features, None) > 0
    assert "forward" not in vars(deep) and "forward" not in vars(deep[0])


@pytest.mark.slow
def test_adaptive_layer_with_matryoshka(model, triplets):
    inner = L.MatryoshkaLoss(model, L.MultipleNegativesRankingLoss(model), [32, 16])
    assert_learns(L.AdaptiveLayerLoss(model, inner), triplets, None)


def test_adaptive_layer_cached_inner_warns(model, triplets):
    with pytest.warns(UserWarning, match="without gradient caching"):
        loss = L.AdaptiveLayerLoss(model, L.CachedMultipleNegativesRankingLoss(model, mini_batch_size=2))
    model.eval()
    reference = L.AdaptiveLayerLoss(model, L.MultipleNegativesRankingLoss(model))
    assert value(loss, triplets, None) == pytest.approx(value(reference, triplets, None), rel=1e-5)


# -- contract details ---------------------------------------------------------------------------------------
def all_losses(model: SentenceTransformer) -> list[torch.nn.Module]:
    mnrl = L.MultipleNegativesRankingLoss(model)
    return [
        mnrl,
        L.CachedMultipleNegativesRankingLoss(model),
        L.MultipleNegativesSymmetricRankingLoss(model),
        L.TripletLoss(model),
        L.CosineSimilarityLoss(model),
        L.CoSENTLoss(model),
        L.AnglELoss(model),
        L.ContrastiveLoss(model),
        L.OnlineContrastiveLoss(model),
        L.SoftmaxLoss(model, 32, 3),
        L.MSELoss(model),
        L.MarginMSELoss(model),
        L.DistillKLDivLoss(model),
        L.BatchHardTripletLoss(model),
        L.BatchAllTripletLoss(model),
        L.MatryoshkaLoss(model, mnrl, [32, 16]),
        L.AdaptiveLayerLoss(model, mnrl),
    ]


def test_config_dicts_are_json(model):
    losses = all_losses(model)
    assert {type(x).__name__ for x in losses} >= {n for n in L.__all__ if n.endswith("Loss")}
    for loss in losses:
        config = loss.get_config_dict()
        assert isinstance(config, dict)
        json.dumps(config)
        assert loss.citation is None or isinstance(loss.citation, str)
    assert L.MultipleNegativesRankingLoss(model).get_config_dict() == {"scale": 20.0, "similarity_fct": "cos_sim"}
    assert L.TripletLoss(model).get_config_dict() == {"distance_metric": "TripletDistanceMetric.EUCLIDEAN",
                                                      "triplet_margin": 5}
    assert L.ContrastiveLoss(model).get_config_dict()["distance_metric"] == "SiameseDistanceMetric.COSINE_DISTANCE"
    assert L.MatryoshkaLoss(model, L.CoSENTLoss(model), [16, 32]).get_config_dict() == {
        "loss": "CoSENTLoss", "matryoshka_dims": [32, 16], "matryoshka_weights": [1, 1], "n_dims_per_step": -1}


def test_defaults_match_sentence_transformers(model):
    from sentencekit.similarity import cos_sim, pairwise_cos_sim, pairwise_dot_score

    assert (L.MultipleNegativesRankingLoss(model).scale, L.MultipleNegativesRankingLoss(model).similarity_fct) == (
        20.0, cos_sim)
    cached = L.CachedMultipleNegativesRankingLoss(model)
    assert (cached.scale, cached.mini_batch_size, cached.show_progress_bar) == (20.0, 32, False)
    assert L.CoSENTLoss(model).similarity_fct is pairwise_cos_sim
    assert L.MarginMSELoss(model).similarity_fct is pairwise_dot_score
    assert L.DistillKLDivLoss(model).temperature == 1.0
    assert (L.ContrastiveLoss(model).margin, L.ContrastiveLoss(model).size_average) == (0.5, True)
    assert L.TripletLoss(model).distance_metric is L.TripletDistanceMetric.EUCLIDEAN
    adaptive = L.AdaptiveLayerLoss(model, L.CoSENTLoss(model))
    assert (adaptive.n_layers_per_step, adaptive.kl_temperature) == (1, 0.3)
    softmax = L.SoftmaxLoss(model, 32, 3)
    assert (softmax.concatenation_sent_rep, softmax.concatenation_sent_difference,
            softmax.concatenation_sent_multiplication) == (True, True, False)
    assert isinstance(softmax.loss_fct, torch.nn.CrossEntropyLoss)


def run_examples(obj: object, paths: dict[str, object], default_path: object) -> None:
    """Run the ``>>>`` lines of ``obj``'s docstring (doctest directives ignored), with Hub model names
    replaced by tiny local models."""
    lines = [line.strip()[4:] for line in (obj.__doc__ or "").splitlines()
             if line.strip().startswith((">>> ", "... "))]
    assert lines, f"{obj.__name__} has no usage example"
    code = "\n".join(re.sub(r"\s*# doctest:.*$", "", line) for line in lines)

    def local(match: re.Match) -> str:
        return f'{match.group(1)}(r"{paths.get(match.group(2), default_path)}", device="cpu")'

    code = re.sub(r'(SentenceTransformer|CrossEncoder)\("([^"]+)"\)', local, code)
    torch.manual_seed(0)
    exec(compile(code, f"<{obj.__name__} docstring>", "exec"), {})


@pytest.mark.parametrize("name", [n for n in L.__all__ if n.endswith("Loss")])
def test_docstring_examples_run(name, tiny_st_dir):
    run_examples(getattr(L, name), {}, tiny_st_dir)


def test_clear_errors(model, pairs, triplets):
    with pytest.raises(ValueError, match="TripletLoss expects 3 input columns, got 2"):
        L.TripletLoss(model)(pairs, None)
    with pytest.raises(ValueError, match="CoSENTLoss needs labels"):
        L.CoSENTLoss(model)(pairs, None)
    with pytest.raises(ValueError, match=r"shape \(6,\) for a batch of 6 with 2 negative"):
        L.MarginMSELoss(model)(featurize(model, [ANCHORS, POSITIVES, NEGATIVES, NEGATIVES]), torch.zeros(6))
    with pytest.raises(ValueError, match="truncated"):
        L.MatryoshkaLoss(model, L.SoftmaxLoss(model, 32, 2), [32, 16])(pairs, torch.zeros(6, dtype=torch.long))
