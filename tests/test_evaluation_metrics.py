"""The evaluation metric helpers against SciPy (correlations) and brute-force definitions (average
precision, best accuracy / F1 thresholds), plus small hand-computed ranked lists."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from sentencekit.evaluation import metrics as m

RNG_SEEDS = range(12)


def _random_case(seed: int, n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Scores with many ties (a few distinct values) and 0/1 labels with both classes present."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, size=n).astype(np.float64) / 5
    labels = rng.integers(0, 2, size=n)
    labels[:2] = [0, 1]
    return scores, labels


# -- correlation -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_rank_and_correlations_match_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 5, size=25).astype(float)  # many ties
    y = x + rng.normal(size=25)
    np.testing.assert_allclose(m.rankdata(x), stats.rankdata(x))
    assert m.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
    assert m.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    assert m.spearman(x, np.round(y)) == pytest.approx(stats.spearmanr(x, np.round(y))[0], abs=1e-12)


def test_correlations_by_hand_and_degenerate_inputs():
    # ranks of [10, 20, 20, 40] are [1, 2.5, 2.5, 4]; centred: [-1.5, 0, 0, 1.5] vs [-1.5, -.5, .5, 1.5]
    assert m.spearman([1, 2, 3, 4], [10, 20, 20, 40]) == pytest.approx(4.5 / math.sqrt(5 * 4.5))
    assert m.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert m.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(m.pearson([1, 1, 1], [1, 2, 3]))  # constant input: undefined, as SciPy
    assert m.pearson(torch.tensor([1.0, 2.0, 4.0]), np.array([1, 2, 4])) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        m.pearson([1, 2], [1, 2, 3])


# -- average precision and thresholds ----------------------------------------------------------------
def _brute_average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean, over positives, of the precision of "score >= that positive's score" (ties grouped)."""
    return float(np.mean([labels[scores >= s].mean() for s in scores[labels == 1]]))


def _cut_thresholds(scores: np.ndarray) -> list[float]:
    """Every attainable cut that leaves at least one example on each side: midpoints of distinct scores."""
    distinct = np.unique(scores)
    return list((distinct[1:] + distinct[:-1]) / 2)


def _f1(predicted: np.ndarray, labels: np.ndarray) -> float:
    tp = float((predicted & (labels == 1)).sum())
    return 2 * tp / (predicted.sum() + (labels == 1).sum()) if tp else 0.0


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_average_precision_matches_brute_force(seed):
    scores, labels = _random_case(seed)
    assert m.average_precision(labels, scores) == pytest.approx(_brute_average_precision(scores, labels))
    distinct = np.random.default_rng(seed).permutation(len(labels)).astype(float)  # no ties
    expected = np.mean([labels[distinct >= s].mean() for s in distinct[labels == 1]])
    assert m.average_precision(labels, distinct) == pytest.approx(expected)


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_best_thresholds_match_brute_force(seed):
    scores, labels = _random_case(seed)
    thresholds = _cut_thresholds(scores)
    best_f1 = max(_f1(scores >= t, labels) for t in thresholds)
    best_acc = max(((scores >= t) == (labels == 1)).mean() for t in thresholds)

    f1, precision, recall, f1_threshold = m.best_f1_threshold(scores, labels)
    assert f1 == pytest.approx(best_f1)
    predicted = scores >= f1_threshold  # the reported threshold really achieves it
    assert _f1(predicted, labels) == pytest.approx(f1)
    assert precision == pytest.approx(labels[predicted].mean())
    assert recall == pytest.approx(predicted[labels == 1].mean())

    accuracy, accuracy_threshold = m.best_accuracy_threshold(scores, labels)
    assert accuracy == pytest.approx(best_acc)
    assert ((scores >= accuracy_threshold) == (labels == 1)).mean() == pytest.approx(accuracy)

    # distances: smaller is more similar; the same classifier on negated scores
    flipped = m.best_f1_threshold(-scores, labels, greater_is_better=False)
    assert flipped[:3] == pytest.approx((f1, precision, recall))
    assert flipped[3] == pytest.approx(-f1_threshold)


def test_threshold_sweep_by_hand():
    # sorted: 0.9(1) 0.8(0) 0.6(1) 0.4(1) | 0.2(0) 0.0(0): 3 positives above + 2 negatives below = 5/6
    scores, labels = [0.9, 0.8, 0.6, 0.4, 0.2, 0.0], [1, 0, 1, 1, 0, 0]
    assert m.best_accuracy_threshold(scores, labels) == pytest.approx((5 / 6, 0.3))
    # F1 after each rank: 2/4, 2/5, 4/6, 6/7 (best: P 3/4, R 1), 6/8
    assert m.best_f1_threshold(scores, labels) == pytest.approx((6 / 7, 3 / 4, 1.0, 0.3))
    # a cut inside tied scores is not attainable: [0.5(1), 0.5(0)] has no cut at all
    assert m.best_accuracy_threshold([0.5, 0.5], [1, 0]) == (0.0, -1.0)
    assert m.best_f1_threshold([0.5, 0.5], [1, 0]) == (0.0, 0.0, 0.0, 0.0)
    assert m.average_precision([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert m.average_precision([0, 0], [0.3, 0.1]) == 0.0


def test_best_f1_ranked_counts_missing_positives():
    # 4 positives in total, 2 in the list at ranks 1 and 3: F1 2/5 then 4/7 (after the last entry)
    assert m.best_f1_ranked([1, 0, 1], [0.9, 0.7, 0.5], num_relevant=4) == pytest.approx((4 / 7, 2 / 3, 0.5, 0.5))
    assert m.best_f1_ranked([], [], num_relevant=3) == (0.0, 0.0, 0.0, 0.0)


def test_mcc_and_f1_scores_by_hand():
    # tp=3 fp=1 tn=2 fn=0: (3*2 - 1*0) / sqrt(4 * 3 * 3 * 2)
    assert m.matthews_corrcoef([1, 0, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0]) == pytest.approx(6 / math.sqrt(72))
    assert m.matthews_corrcoef([1, 1], [1, 1]) == 0.0  # undefined
    # class 0: F1 2/3 (support 2); class 1: 0 (support 1, predicted twice); class 2: 2/3 (support 3)
    scores = m.f1_scores([0, 1, 2, 2, 2, 0], [0, 2, 2, 2, 1, 1])
    assert scores == pytest.approx({
        "accuracy": 3 / 6,
        "f1_macro": (2 / 3 + 0 + 2 / 3) / 3,
        "f1_micro": 2 * 3 / (2 * 3 + 3 + 3),  # tp 3, fp 3, fn 3 over all classes
        "f1_weighted": (2 / 3 * 2 + 0 * 1 + 2 / 3 * 3) / 6,
    })


# -- ranked lists --------------------------------------------------------------------------------------
def test_ranked_list_metrics_by_hand():
    ranked = [0, 1, 0, 1, 0]  # relevant at ranks 2 and 4; 3 relevant documents exist
    assert m.hit_at_k(ranked, 1) == 0.0 and m.hit_at_k(ranked, 2) == 1.0
    assert m.precision_at_k(ranked, 4) == 0.5
    assert m.precision_at_k(ranked, 10) == 0.2  # divided by k even past the end of the list
    assert m.recall_at_k(ranked, 3, 4) == pytest.approx(2 / 3)
    assert m.mrr_at_k(ranked, 10) == 0.5 and m.mrr_at_k(ranked, 1) == 0.0
    # DCG = 1/log2(3) + 1/log2(5); ideal DCG of 3 relevant = 1 + 1/log2(3) + 1/log2(4)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m.ndcg_at_k(ranked, 3, 10) == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / ideal)
    # ideal capped at k=2: 1 + 1/log2(3)
    assert m.ndcg_at_k(ranked, 3, 2) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    # precision at the hits: 1/2, 2/4; divided by min(k, relevant)
    assert m.map_at_k(ranked, 3, 10) == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert m.map_at_k(ranked, 3, 2) == pytest.approx((1 / 2) / 2)
    assert m.ranked_average_precision(ranked, 3) == pytest.approx((1 / 2 + 2 / 4) / 3)


def test_reranking_metrics_ties_never_earn_credit():
    # a model that scores everything the same ranks the relevant candidate last
    assert m.rank_relevance([1, 0, 0], [0.5, 0.5, 0.5]).tolist() == [0, 0, 1]
    mrr, ndcg, ap = m.reranking_metrics([1, 0, 0], [0.5, 0.5, 0.5], k=10)
    assert mrr == pytest.approx(1 / 3) and ndcg == pytest.approx(1 / math.log2(4)) and ap == pytest.approx(1 / 3)
    means = m.mean_reranking_metrics([([0, 1], [0.9, 0.1]), ([0, 0], [0.3, 0.2])], k=10, prefix="base_")
    assert means == pytest.approx({"base_map": 0.25, "base_mrr@10": 0.25, "base_ndcg@10": 1 / math.log2(3) / 2})


def test_merge_top_k_keeps_the_best_across_chunks():
    values, ids = m.merge_top_k(None, None, torch.tensor([[0.2, 0.9]]), torch.tensor([[0, 1]]), 2)
    values, ids = m.merge_top_k(values, ids, torch.tensor([[0.5, 0.1]]), torch.tensor([[2, 3]]), 2)
    assert ids.tolist() == [[1, 2]] and values[0].tolist() == pytest.approx([0.9, 0.5])
