"""The multi-vector (ColBERT) losses on a tiny random ColBERT model: values computed by hand from the model's token
vectors (plain-loop MaxSim, softmax, KL, MSE), chunking (``mini_batch_size`` / ``score_mini_batch_size``) giving
the same values, the cached loss giving the uncached loss's value and gradients (1e-5), dropout replayed, the
columns' tasks, label shapes, errors and configs."""

from __future__ import annotations

import math

import pytest
import torch

from sentencekit import MultiVectorEncoder
from sentencekit.late_interaction_scoring import mean_colbert_kd_scores, mean_colbert_scores_pairwise
from sentencekit.late_interaction_xtr import XTRKDScores, XTRScores
from sentencekit.losses._gradcache import slice_rows
from sentencekit.losses.multivector import (
    CachedMultiVectorMultipleNegativesRankingLoss,
    MultiVectorDistillKLDivLoss,
    MultiVectorMarginMSELoss,
    MultiVectorMultipleNegativesRankingLoss,
)

pytestmark = pytest.mark.unit

QUERIES = ["how do i get a refund", "reset my password", "cancel my subscription now please", "late parcel"]
POSITIVES = ["refund return policy, money back!", "password reset login", "cancel subscription account",
             "delivery is late; ship it"]
NEGATIVES = ["the cat sat on the mat", "hello world", "stock prices fell", "tea or coffee"]
NEGATIVES_2 = ["a red car", "music and dance tonight", "paris weather", "card payment failed"]
TEACHER = torch.tensor([[3.0, 1.0, 0.5], [2.0, 0.5, 1.5], [1.0, 1.5, 0.0], [4.0, 0.0, 2.0]])


@pytest.fixture()
def colbert(tiny_mv_dir):
    model = MultiVectorEncoder(str(tiny_mv_dir), device="cpu")
    model.eval()  # no dropout: plain and cached / chunked runs see identical token vectors
    return model


def columns(model, *texts):
    """Tokenized columns as the collator makes them: column 0 for queries, the others for documents."""
    tasks = ["query"] + ["document"] * (len(texts) - 1)
    return [{**model.tokenize(list(t), task=task), "task": task} for t, task in zip(texts, tasks)]


def token_rows(model, features):
    """Each text's scored token vectors (a list of [tokens, dim]), from the model run by hand."""
    with torch.no_grad():
        out = model(dict(features), task=features["task"])
    return [t[m] for t, m in zip(out["token_embeddings"], out["attention_mask"].bool())]


def maxsim(query, document):
    return sum(max(float(q @ d) for d in document) for q in query)


def loss_and_grads(model, loss, features, labels=None):
    model.zero_grad()
    value = loss(features, labels)
    value.backward()
    return float(value.detach()), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def assert_same(first, second):
    (v1, g1), (v2, g2) = first, second
    assert v1 == pytest.approx(v2, rel=1e-5, abs=1e-6)
    assert g1.keys() == g2.keys() and g1
    for name, grad in g2.items():
        torch.testing.assert_close(g1[name], grad, rtol=1e-5, atol=1e-5, msg=name)


# -- values by hand -------------------------------------------------------------------------------------------
def test_mnrl_by_hand(colbert):
    features = columns(colbert, QUERIES, POSITIVES, NEGATIVES)
    queries, positives, negatives = (token_rows(colbert, f) for f in features)
    assert all(len(q) == 12 for q in queries)  # fixed expansion: every query scores 12 tokens
    scale = 2.0
    total = 0.0
    for i, query in enumerate(queries):
        # query-major candidates: (positive_j, negative_j) for every j; query i's positive is column 2 i
        logits = [scale * maxsim(query, doc) for j in range(len(queries)) for doc in (positives[j], negatives[j])]
        total += math.log(sum(math.exp(x) for x in logits)) - logits[2 * i]
    loss = MultiVectorMultipleNegativesRankingLoss(colbert, scale=scale)
    with torch.no_grad():
        assert float(loss(features)) == pytest.approx(total / len(queries), rel=1e-5)


def test_distill_kl_div_by_hand(colbert):
    features = columns(colbert, QUERIES, POSITIVES, NEGATIVES, NEGATIVES_2)
    queries, *documents = (token_rows(colbert, f) for f in features)
    t_student, t_teacher = 2.0, 3.0
    total = 0.0
    for i, query in enumerate(queries):
        student = [maxsim(query, column[i]) / t_student for column in documents]
        teacher = [float(t) / t_teacher for t in TEACHER[i]]
        log_z_s = math.log(sum(math.exp(s) for s in student))
        z_t = sum(math.exp(t) for t in teacher)
        total += sum(math.exp(t) / z_t * (t - math.log(z_t) - (s - log_z_s)) for s, t in zip(student, teacher))
    loss = MultiVectorDistillKLDivLoss(colbert, student_temperature=t_student, teacher_temperature=t_teacher)
    with torch.no_grad():
        assert float(loss(features, TEACHER)) == pytest.approx(total / len(queries) * t_student**2, rel=1e-5)


@pytest.mark.parametrize("label_form", ["margins", "scores", "one negative"])
def test_margin_mse_by_hand(colbert, label_form):
    texts = [QUERIES, POSITIVES, NEGATIVES] + ([NEGATIVES_2] if label_form != "one negative" else [])
    features = columns(colbert, *texts)
    queries, positives, *negatives = (token_rows(colbert, f) for f in features)
    margins = TEACHER[:, :1] - TEACHER[:, 1:len(negatives) + 1]
    labels = {"margins": margins, "scores": TEACHER, "one negative": margins[:, 0]}[label_form]
    squares = [(maxsim(q, positives[i]) - maxsim(q, column[i]) - float(margins[i, j])) ** 2
               for i, q in enumerate(queries) for j, column in enumerate(negatives)]
    with torch.no_grad():
        value = float(MultiVectorMarginMSELoss(colbert)(features, labels))
    assert value == pytest.approx(sum(squares) / len(squares), rel=1e-5)


def test_scorers_can_be_swapped(colbert):
    features = columns(colbert, QUERIES, POSITIVES, NEGATIVES, NEGATIVES_2)
    queries, *documents = (token_rows(colbert, f) for f in features)
    # MeanMaxSim margins: MaxSim divided by the 12 scored query tokens
    margins = TEACHER[:, :1] - TEACHER[:, 1:]
    squares = [((maxsim(q, documents[0][i]) - maxsim(q, documents[j + 1][i])) / 12 - float(margins[i, j])) ** 2
               for i, q in enumerate(queries) for j in range(2)]
    with torch.no_grad():
        value = MultiVectorMarginMSELoss(colbert, similarity_fct=mean_colbert_scores_pairwise)(features, margins)
        assert float(value) == pytest.approx(sum(squares) / len(squares), rel=1e-5)
        kl_mean = MultiVectorDistillKLDivLoss(colbert, similarity_fct=mean_colbert_kd_scores)(features, TEACHER)
        kl_xtr = MultiVectorDistillKLDivLoss(colbert, similarity_fct=XTRKDScores(top_k=5))(features, TEACHER)
        kl_plain = MultiVectorDistillKLDivLoss(colbert)(features, TEACHER)
    assert len({float(kl_mean), float(kl_xtr), float(kl_plain)}) == 3


# -- chunking and caching -------------------------------------------------------------------------------------
def test_chunking_changes_nothing(colbert):
    features = columns(colbert, QUERIES, POSITIVES, NEGATIVES, NEGATIVES_2)
    plain = loss_and_grads(colbert, MultiVectorMultipleNegativesRankingLoss(colbert), features)
    chunked = MultiVectorMultipleNegativesRankingLoss(colbert, mini_batch_size=1, score_mini_batch_size=3)
    assert_same(loss_and_grads(colbert, chunked, features), plain)
    for loss, labels in [(MultiVectorDistillKLDivLoss, TEACHER), (MultiVectorMarginMSELoss, TEACHER)]:
        assert_same(loss_and_grads(colbert, loss(colbert, mini_batch_size=3), features, labels),
                    loss_and_grads(colbert, loss(colbert), features, labels))


@pytest.mark.parametrize("settings", [{"mini_batch_size": 1}, {"mini_batch_size": 3, "score_mini_batch_size": 2},
                                      {"mini_batch_num_tokens": 14}, {"mini_batch_size": 32}])
def test_cached_gives_the_uncached_value_and_gradients(colbert, settings):
    features = columns(colbert, QUERIES, POSITIVES, NEGATIVES, NEGATIVES_2)
    plain = loss_and_grads(colbert, MultiVectorMultipleNegativesRankingLoss(colbert, scale=3.0), features)
    cached = CachedMultiVectorMultipleNegativesRankingLoss(colbert, scale=3.0, **settings)
    assert_same(loss_and_grads(colbert, cached, features), plain)


def test_cached_with_xtr_and_without_the_collators_task(colbert):
    features = columns(colbert, QUERIES, POSITIVES, NEGATIVES)
    untasked = [{k: v for k, v in f.items() if k != "task"} for f in features]  # the positional default
    plain = loss_and_grads(colbert, MultiVectorMultipleNegativesRankingLoss(colbert, similarity_fct=XTRScores(6)),
                           features)
    cached = CachedMultiVectorMultipleNegativesRankingLoss(colbert, similarity_fct=XTRScores(6), mini_batch_size=2)
    assert_same(loss_and_grads(colbert, cached, untasked), plain)
    assert "task" not in untasked[0]  # the loss stamps tasks on copies


def test_cached_replays_dropout_and_evaluates_without_a_graph(colbert):
    features = columns(colbert, QUERIES, POSITIVES)
    colbert.train()  # dropout on: the second pass must draw the same masks
    torch.manual_seed(3)
    plain = loss_and_grads(colbert, MultiVectorMultipleNegativesRankingLoss(colbert), features)
    torch.manual_seed(3)
    cached = loss_and_grads(colbert, CachedMultiVectorMultipleNegativesRankingLoss(colbert, mini_batch_size=4),
                            features)
    assert_same(cached, plain)
    colbert.eval()
    with torch.no_grad():
        value = CachedMultiVectorMultipleNegativesRankingLoss(colbert, mini_batch_size=1)(features)
        reference = MultiVectorMultipleNegativesRankingLoss(colbert)(features)
    assert not value.requires_grad and float(value) == pytest.approx(float(reference), rel=1e-5)


def test_mini_batch_slices_keep_expansion_tokens():
    # query expansion positions are not attended to (attention 0) but scored: a mini-batch must keep them
    features = {"input_ids": torch.tensor([[1, 5, 2, 9, 9, 0], [1, 2, 9, 9, 9, 0]]),
                "attention_mask": torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]]),
                "query_expansion_positions": torch.tensor([[0, 0, 0, 1, 1, 0], [0, 0, 1, 1, 1, 0]]).bool(),
                "task": "query"}
    part = slice_rows(features, 1, 2)
    assert part["input_ids"].tolist() == [[1, 2, 9, 9, 9]] and part["task"] == "query"
    assert part["query_expansion_positions"].tolist() == [[False, False, True, True, True]]


# -- errors and configs ---------------------------------------------------------------------------------------
def test_errors_name_the_problem(colbert):
    pairs = columns(colbert, QUERIES, POSITIVES)
    triplets = columns(colbert, QUERIES, POSITIVES, NEGATIVES)
    with pytest.raises(ValueError, match="scale"):
        MultiVectorMultipleNegativesRankingLoss(colbert, scale=0)
    with pytest.raises(ValueError, match="score_mini_batch_size"):
        MultiVectorMultipleNegativesRankingLoss(colbert, score_mini_batch_size=0)
    with pytest.raises(ValueError, match="mini_batch_num_tokens"):
        CachedMultiVectorMultipleNegativesRankingLoss(colbert, mini_batch_num_tokens=0)
    with pytest.raises(ValueError, match="at least 2 input columns"):
        MultiVectorMultipleNegativesRankingLoss(colbert)(pairs[:1])
    with pytest.raises(ValueError, match="temperature"):
        MultiVectorDistillKLDivLoss(colbert, teacher_temperature=0.0)
    with pytest.raises(ValueError, match="at least 3 input columns"):
        MultiVectorDistillKLDivLoss(colbert)(pairs, TEACHER[:, :1])
    with pytest.raises(ValueError, match=r"labels of shape \(4, 2\)"):
        MultiVectorDistillKLDivLoss(colbert)(triplets, TEACHER)
    with pytest.raises(ValueError, match="needs labels"):
        MultiVectorDistillKLDivLoss(colbert)(triplets, None)
    with pytest.raises(ValueError, match="NaN"):
        MultiVectorDistillKLDivLoss(colbert)(triplets, torch.full((4, 2), float("nan")))
    with pytest.raises(ValueError, match="labels of shape"):
        MultiVectorMarginMSELoss(colbert)(triplets, TEACHER)


def test_configs_name_the_scorers(colbert):
    from functools import partial

    from sentencekit.late_interaction_scoring import colbert_scores

    assert MultiVectorMultipleNegativesRankingLoss(colbert).get_config_dict() == {
        "scale": 1.0, "similarity_fct": "colbert_scores", "mini_batch_size": None, "score_mini_batch_size": None,
        "gather_across_devices": False}
    cached = CachedMultiVectorMultipleNegativesRankingLoss(colbert, similarity_fct=XTRScores(64), mini_batch_size=8)
    assert cached.get_config_dict() == {
        "scale": 1.0, "similarity_fct": "XTRScores(top_k=64, chunk_elements=None)", "mini_batch_size": 8,
        "mini_batch_num_tokens": None, "score_mini_batch_size": 8, "gather_across_devices": False}
    kl = MultiVectorDistillKLDivLoss(colbert, similarity_fct=partial(colbert_scores, chunk_elements=10),
                                     temperature=2.0, teacher_temperature=1.0)
    assert kl.get_config_dict() == {"similarity_fct": "colbert_scores(chunk_elements=10)", "temperature": 2.0,
                                    "teacher_temperature": 1.0, "mini_batch_size": None}
    assert MultiVectorMarginMSELoss(colbert).get_config_dict() == {"similarity_fct": "colbert_scores_pairwise",
                                                                   "mini_batch_size": None}
    # the model's weights are the loss's parameters (as sentence-transformers, where the model is a submodule)
    assert {id(p) for p in colbert.parameters()} <= {id(p) for p in kl.parameters()}
