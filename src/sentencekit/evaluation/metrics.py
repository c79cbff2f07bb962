"""Metric helpers shared by the evaluators, in NumPy only (no SciPy / scikit-learn at run time).

- correlation: :func:`rankdata` (average ranks for ties), :func:`pearson`, :func:`spearman`;
- scored binary labels: :func:`average_precision` (scikit-learn's definition, tied scores grouped),
  :func:`best_accuracy_threshold`, :func:`best_f1_threshold` (sentence-transformers' sorted sweep),
  :func:`matthews_corrcoef`, :func:`f1_scores` (macro / micro / weighted, multi-class);
- ranked lists (1 = relevant, best first): :func:`precision_at_k`, :func:`recall_at_k`,
  :func:`hit_at_k`, :func:`mrr_at_k`, :func:`ndcg_at_k`, :func:`map_at_k`, :func:`ranked_average_precision`,
  and :func:`rank_relevance` / :func:`reranking_metrics` / :func:`mean_reranking_metrics` for scored
  candidate lists;
- retrieval: :func:`merge_top_k`, a running top-k over corpus chunks.

>>> spearman([1, 2, 3, 4], [10, 20, 20, 40])
0.9486832980505138
>>> ndcg_at_k([0, 1, 0], num_relevant=1, k=10)   # one relevant document, found at rank 2
0.6309297535714575
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

ArrayLike = Sequence[float] | np.ndarray | Tensor


def _as_array(values: Any, dtype: Any = np.float64) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().cpu().float().numpy()
    return np.asarray(values, dtype=dtype).ravel()


# -- correlation ----------------------------------------------------------------------------------------
def rankdata(values: ArrayLike) -> np.ndarray:
    """Ranks 1..n; tied values share the average of their ranks (as ``scipy.stats.rankdata``)."""
    x = _as_array(values)
    order = np.argsort(x, kind="mergesort")
    ordered = x[order]
    starts_group = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    counts = np.diff(np.r_[starts, len(x)])
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = (starts + (counts + 1) / 2.0)[group]
    return ranks


def pearson(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson correlation coefficient; NaN when either input is constant (as SciPy)."""
    a, b = _as_array(x), _as_array(y)
    if len(a) != len(b):
        raise ValueError(f"pearson needs inputs of equal length, got {len(a)} and {len(b)}")
    if len(a) < 2:
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    if denominator == 0:
        return float("nan")
    return float(np.clip((a * b).sum() / denominator, -1.0, 1.0))


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman rank correlation: Pearson on average ranks (ties share their mean rank)."""
    return pearson(rankdata(x), rankdata(y))


# -- scored binary labels -------------------------------------------------------------------------------
def _sorted_by_score(scores: ArrayLike, labels: ArrayLike, greater_is_better: bool) -> tuple[np.ndarray, np.ndarray]:
    s, y = _as_array(scores), _as_array(labels, np.int64)
    if len(s) != len(y):
        raise ValueError(f"Got {len(s)} scores but {len(y)} labels.")
    order = np.argsort(-s if greater_is_better else s, kind="mergesort")
    return s[order], y[order]


def _cut_ends_group(sorted_scores: np.ndarray) -> np.ndarray:
    """For each rank i: whether a cut after rank i separates different scores (a cut inside a group of
    tied scores cannot be made by any threshold). The last rank counts as a group end."""
    return np.r_[sorted_scores[1:] != sorted_scores[:-1], True][: len(sorted_scores)]


def _threshold_after(sorted_scores: np.ndarray, i: int) -> float:
    """The threshold of a cut after rank i: midway to the next score (the score itself after the last)."""
    if i + 1 < len(sorted_scores):
        return float((sorted_scores[i] + sorted_scores[i + 1]) / 2)
    return float(sorted_scores[i])


def _first_best(values: np.ndarray, allowed: np.ndarray) -> int | None:
    """Index of the first maximum of ``values`` where ``allowed`` (None when nothing is allowed or > 0)."""
    candidates = np.where(allowed, values, -np.inf)
    if not len(candidates) or candidates.max() <= 0:
        return None
    return int(np.argmax(candidates))


def best_accuracy_threshold(scores: ArrayLike, labels: ArrayLike,
                            greater_is_better: bool = True) -> tuple[float, float]:
    """Best accuracy of "positive iff score beyond threshold", and that threshold: sentence-transformers'
    sweep (sort by score, try the cut after each rank but the last, threshold midway between the two
    scores), except that cuts inside a group of tied scores are skipped, since no threshold makes them.
    Returns ``(0.0, -1.0)`` when no cut exists.

    >>> best_accuracy_threshold([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])
    (1.0, 0.55)
    """
    s, y = _sorted_by_score(scores, labels, greater_is_better)
    n = len(y)
    positives_above = np.cumsum(y == 1)
    negatives_below = (y == 0).sum() - np.cumsum(y == 0)
    accuracy = (positives_above + negatives_below) / max(n, 1)
    best = _first_best(accuracy, _cut_ends_group(s) & (np.arange(n) < n - 1))
    if best is None:
        return 0.0, -1.0
    return float(accuracy[best]), _threshold_after(s, best)


def _f1_curve(ranked: np.ndarray, num_relevant: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 of predicting the top i+1 of a ranked 0/1 list as positive, for each i."""
    hits = np.cumsum(ranked == 1).astype(np.float64)
    extracted = np.arange(1, len(ranked) + 1, dtype=np.float64)
    precision = hits / extracted
    recall = hits / num_relevant if num_relevant else np.zeros_like(hits)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(hits > 0, 2 * hits / (extracted + num_relevant), 0.0)
    return precision, recall, f1


def best_f1_threshold(scores: ArrayLike, labels: ArrayLike,
                      greater_is_better: bool = True) -> tuple[float, float, float, float]:
    """Best F1 over thresholds, with its precision, recall and threshold: ``(f1, precision, recall,
    threshold)``; the same sweep as :func:`best_accuracy_threshold`. ``(0, 0, 0, 0)`` when no cut finds
    a positive.

    >>> best_f1_threshold([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0])
    (0.8, 0.6666666666666666, 1.0, 0.2)
    """
    s, y = _sorted_by_score(scores, labels, greater_is_better)
    precision, recall, f1 = _f1_curve(y, int((y == 1).sum()))
    best = _first_best(f1, _cut_ends_group(s) & (np.arange(len(y)) < len(y) - 1))
    if best is None:
        return 0.0, 0.0, 0.0, 0.0
    return float(f1[best]), float(precision[best]), float(recall[best]), _threshold_after(s, best)


def best_f1_ranked(ranked_relevance: ArrayLike, scores: ArrayLike,
                   num_relevant: int) -> tuple[float, float, float, float]:
    """Best F1 when the top i+1 entries of a ranked list (best first, ``scores`` descending) are called
    positive, with ``num_relevant`` positives in total (some may be missing from the list); any cut
    between different scores, including after the last entry. Returns ``(f1, precision, recall,
    threshold)``, the threshold midway to the next score.

    >>> best_f1_ranked([1, 0, 1], [0.9, 0.7, 0.5], num_relevant=4)
    (0.5714285714285714, 0.6666666666666666, 0.5, 0.5)
    """
    ranked = _as_array(ranked_relevance, np.int64)
    s = _as_array(scores)
    precision, recall, f1 = _f1_curve(ranked, num_relevant)
    best = _first_best(f1, _cut_ends_group(s))
    if best is None:
        return 0.0, 0.0, 0.0, 0.0
    return float(f1[best]), float(precision[best]), float(recall[best]), _threshold_after(s, best)


def average_precision(labels: ArrayLike, scores: ArrayLike) -> float:
    """Average precision of scores for binary labels, as ``sklearn.metrics.average_precision_score``:
    sum over score thresholds of (recall increase) x precision; tied scores form one threshold.
    0.0 when there is no positive.

    >>> average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1])   # (1/1 + 2/3) / 2
    0.8333333333333333
    """
    s, y = _sorted_by_score(scores, labels, greater_is_better=True)
    total = int((y == 1).sum())
    if total == 0:
        return 0.0
    ends = _cut_ends_group(s)
    hits = np.cumsum(y == 1)[ends]
    extracted = (np.arange(1, len(y) + 1))[ends]
    recall_gain = np.diff(np.r_[0, hits]) / total
    return float((recall_gain * hits / extracted).sum())


def matthews_corrcoef(labels: ArrayLike, predictions: ArrayLike) -> float:
    """Matthews correlation of binary predictions (0.0 when undefined, as scikit-learn)."""
    y, p = _as_array(labels, np.int64) == 1, _as_array(predictions, np.int64) == 1
    tp, tn = float((y & p).sum()), float((~y & ~p).sum())
    fp, fn = float((~y & p).sum()), float((y & ~p).sum())
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return float((tp * tn - fp * fn) / denominator) if denominator else 0.0


def f1_scores(labels: ArrayLike, predictions: ArrayLike) -> dict[str, float]:
    """Accuracy and macro / micro / weighted F1 over the classes in labels or predictions (as
    scikit-learn's ``f1_score``; a class with no true and no predicted members counts 0).

    >>> f1_scores([0, 1, 2, 2], [0, 2, 2, 2])["f1_macro"]   # per class 1, 0, 0.8
    0.6
    """
    y, p = _as_array(labels, np.int64), _as_array(predictions, np.int64)
    classes = np.union1d(y, p)
    tp = np.array([((y == c) & (p == c)).sum() for c in classes], dtype=np.float64)
    fp = np.array([((y != c) & (p == c)).sum() for c in classes], dtype=np.float64)
    fn = np.array([((y == c) & (p != c)).sum() for c in classes], dtype=np.float64)
    support = tp + fn
    denominator = 2 * tp + fp + fn
    per_class = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    micro_denominator = 2 * tp.sum() + fp.sum() + fn.sum()
    return {
        "accuracy": float((y == p).mean()) if len(y) else 0.0,
        "f1_macro": float(per_class.mean()) if len(classes) else 0.0,
        "f1_micro": float(2 * tp.sum() / micro_denominator) if micro_denominator else 0.0,
        "f1_weighted": float((per_class * support).sum() / support.sum()) if support.sum() else 0.0,
    }


# -- ranked lists: relevance (1/0) in rank order, best first ------------------------------------------
def _ranked(ranked_relevance: ArrayLike, k: int | None = None) -> np.ndarray:
    ranked = _as_array(ranked_relevance, np.int64) > 0
    return ranked[:k] if k is not None else ranked


def hit_at_k(ranked_relevance: ArrayLike, k: int) -> float:
    """1.0 if a relevant entry is among the first k, else 0.0 (accuracy@k)."""
    return float(_ranked(ranked_relevance, k).any())


def precision_at_k(ranked_relevance: ArrayLike, k: int) -> float:
    """Relevant entries among the first k, divided by k (even if the list is shorter)."""
    return float(_ranked(ranked_relevance, k).sum() / k)


def recall_at_k(ranked_relevance: ArrayLike, num_relevant: int, k: int) -> float:
    """Relevant entries among the first k, divided by the number of relevant documents."""
    return float(_ranked(ranked_relevance, k).sum() / num_relevant) if num_relevant else 0.0


def mrr_at_k(ranked_relevance: ArrayLike, k: int) -> float:
    """Reciprocal rank of the first relevant entry among the first k (0.0 if none)."""
    hits = np.flatnonzero(_ranked(ranked_relevance, k))
    return float(1.0 / (hits[0] + 1)) if len(hits) else 0.0


def dcg_at_k(ranked_relevance: ArrayLike, k: int) -> float:
    """Discounted cumulative gain: sum of rel_i / log2(i + 1) over ranks i = 1..k."""
    gains = _ranked(ranked_relevance, k).astype(np.float64)
    return float((gains / np.log2(np.arange(2, len(gains) + 2))).sum())


def ndcg_at_k(ranked_relevance: ArrayLike, num_relevant: int, k: int) -> float:
    """DCG@k over the ideal DCG@k of ``num_relevant`` relevant documents (capped at k); binary gains."""
    ideal = dcg_at_k(np.ones(min(num_relevant, k)), k)
    return dcg_at_k(ranked_relevance, k) / ideal if ideal else 0.0


def ranked_average_precision(ranked_relevance: ArrayLike, num_relevant: int) -> float:
    """Sum of the precision at each relevant entry, divided by ``num_relevant``."""
    ranked = _ranked(ranked_relevance)
    hits = np.flatnonzero(ranked)
    if not num_relevant or not len(hits):
        return 0.0
    return float(((np.arange(len(hits)) + 1) / (hits + 1)).sum() / num_relevant)


def map_at_k(ranked_relevance: ArrayLike, num_relevant: int, k: int) -> float:
    """Average precision at k as sentence-transformers computes it: the sum of the precision at each
    relevant entry among the first k, divided by ``min(k, num_relevant)``."""
    return ranked_average_precision(_ranked(ranked_relevance, k), min(k, num_relevant))


def rank_relevance(relevance: ArrayLike, scores: ArrayLike) -> np.ndarray:
    """Relevance labels in descending score order. Tied scores put non-relevant entries first, so that
    a tie never earns credit (a model scoring everything equally gets the worst ranking)."""
    y, s = _as_array(relevance, np.int64), _as_array(scores)
    return y[np.lexsort((y, -s))]


def reranking_metrics(relevance: ArrayLike, scores: ArrayLike, k: int) -> tuple[float, float, float]:
    """``(mrr@k, ndcg@k, average precision)`` of one scored candidate list; the NDCG ideal counts the
    relevant candidates, the average precision is over the whole list."""
    ranked = rank_relevance(relevance, scores)
    num_relevant = int(ranked.sum())
    return mrr_at_k(ranked, k), ndcg_at_k(ranked, num_relevant, k), average_precision(relevance, scores)


def mean_reranking_metrics(lists: Iterable[tuple[ArrayLike, ArrayLike]], k: int, prefix: str = "") -> dict[str, float]:
    """Mean ``map``, ``mrr@k`` and ``ndcg@k`` over ``(relevance, scores)`` candidate lists (a list without
    a relevant candidate scores 0), keys prefixed with ``prefix``."""
    results = [reranking_metrics(relevance, scores, k) if np.any(_as_array(relevance) > 0) else (0.0, 0.0, 0.0)
               for relevance, scores in lists]
    mrr, ndcg, ap = (float(np.mean(column)) for column in zip(*results)) if results else (0.0, 0.0, 0.0)
    return {f"{prefix}map": ap, f"{prefix}mrr@{k}": mrr, f"{prefix}ndcg@{k}": ndcg}


# -- retrieval ------------------------------------------------------------------------------------------
def merge_top_k(values: Tensor | None, ids: Tensor | None, new_values: Tensor, new_ids: Tensor,
                k: int) -> tuple[Tensor, Tensor]:
    """Keep, per row, the ``k`` best of a running ``(values, ids)`` top-k and a chunk's candidates,
    sorted best first (``values`` / ``ids`` None on the first chunk)."""
    if values is not None and ids is not None:
        new_values, new_ids = torch.cat([values, new_values], dim=1), torch.cat([ids, new_ids], dim=1)
    best, position = torch.topk(new_values, min(k, new_values.shape[1]), dim=1)
    return best, torch.gather(new_ids, 1, position)


__all__ = [
    "rankdata", "pearson", "spearman", "average_precision", "best_accuracy_threshold", "best_f1_threshold",
    "best_f1_ranked", "matthews_corrcoef", "f1_scores", "hit_at_k", "precision_at_k", "recall_at_k",
    "mrr_at_k", "dcg_at_k", "ndcg_at_k", "ranked_average_precision", "map_at_k", "rank_relevance",
    "reranking_metrics", "mean_reranking_metrics", "merge_top_k",
]
