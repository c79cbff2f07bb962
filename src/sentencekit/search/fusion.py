"""Fusing ranked lists from several retrievers (e.g. dense embeddings and BM25) into one ranking.

Pure functions over document keys: no index, no model. :class:`~sentencekit.search.index.EmbeddingIndex`
uses them for ``search(..., retrieval="hybrid")``; benchmarks can use them on their own candidate pools.

* :func:`reciprocal_rank_fusion` reads only ranks, so lists whose scores live on different scales (cosine
  in [-1, 1], BM25 in [0, inf)) combine without calibration.
* :func:`weighted_score_fusion` reads scores: each list is normalised, then the lists are combined with
  convex weights, so how far ahead a document is (not only its rank) counts.

>>> reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=1)
[('b', 0.8333333333333333), ('a', 0.5), ('c', 0.3333333333333333)]
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

NORMALIZATIONS = ("minmax", "zscore", "none")


def _check_weights(weights: Sequence[float] | None, n_lists: int, *, convex: bool) -> list[float]:
    """Weights as floats, one per list; ``convex`` rescales them to sum to 1."""
    if weights is None:
        weights = [1.0] * n_lists
    weights = [float(w) for w in weights]
    if len(weights) != n_lists:
        raise ValueError(f"Got {len(weights)} weights for {n_lists} lists; pass one weight per list.")
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise ValueError(f"Fusion weights must be finite and non-negative, got {weights}.")
    total = sum(weights)
    if total <= 0:
        raise ValueError(f"At least one fusion weight must be positive, got {weights}.")
    return [w / total for w in weights] if convex else weights


def _sorted(fused: dict[Hashable, float]) -> list[tuple[Hashable, float]]:
    """Best first; equal scores keep first-seen order (dicts keep insertion order; ``sorted`` is stable)."""
    return sorted(fused.items(), key=lambda item: -item[1])


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[Hashable]],
    k: int = 60,
    weights: Sequence[float] | None = None,
) -> list[tuple[Hashable, float]]:
    """Reciprocal rank fusion (Cormack, Clarke and Buettcher, "Reciprocal Rank Fusion outperforms
    Condorcet and individual Rank Learning Methods", SIGIR 2009): a document's score is
    ``sum_i weights[i] / (k + rank_i)``, with ``rank_i`` its 1-based position in list ``i``; lists that
    do not contain it add nothing. ``k = 60`` is the paper's constant: it damps the lead of the first
    ranks. ``weights`` (default all 1, as in the paper) scale each list's contribution.

    ``rankings``: one sequence of document keys per retriever, best first (a key repeated within a list
    counts at its first position). Returns ``[(key, fused score)]`` sorted best first; ties keep the
    order in which keys were first seen (list by list). Raises ``ValueError`` for ``k < 0`` or bad weights.

    >>> reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], k=60)  # doctest: +ELLIPSIS
    [('a', 0.03252...), ('c', 0.03226...), ('b', 0.01612...)]
    >>> reciprocal_rank_fusion([["a", "b"], ["b", "a"]], k=0, weights=[3, 1])
    [('a', 3.5), ('b', 2.5)]
    >>> reciprocal_rank_fusion([])
    []
    """
    if not isinstance(k, (int, float)) or k < 0:
        raise ValueError(f"k must be a non-negative number (the paper uses 60), got {k!r}")
    weights = _check_weights(weights, len(rankings), convex=False) if rankings else []
    fused: dict[Hashable, float] = {}
    for ranking, weight in zip(rankings, weights):
        seen: set[Hashable] = set()
        for rank, key in enumerate(ranking, 1):
            if key in seen:
                continue
            seen.add(key)
            fused[key] = fused.get(key, 0.0) + weight / (k + rank)
    return _sorted(fused)


def _normalize(scores: Mapping[Hashable, float], how: str) -> tuple[dict[Hashable, float], float]:
    """One list's scores normalised, and the normalised value of its minimum (what missing keys get)."""
    values = [float(v) for v in scores.values()]
    if any(not math.isfinite(v) for v in values):
        raise ValueError("Scores must be finite numbers to be fused; got a NaN or infinite score.")
    if how == "none" or not values:
        low = min(values, default=0.0)
        return dict(zip(scores, values)), low
    low, high = min(values), max(values)
    if how == "minmax":
        span = high - low
        if span == 0:  # one hit, or ties only: each retrieved key is as good as the list's best
            return dict.fromkeys(scores, 1.0), 0.0
        return {key: (v - low) / span for key, v in zip(scores, values)}, 0.0
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    if std == 0:  # as for minmax: retrieved keys get full credit, keys the list did not retrieve none
        return dict.fromkeys(scores, 1.0), 0.0
    return {key: (v - mean) / std for key, v in zip(scores, values)}, (low - mean) / std


def weighted_score_fusion(
    scores: Sequence[Mapping[Hashable, float]],
    weights: Sequence[float],
    normalization: str = "minmax",
) -> list[tuple[Hashable, float]]:
    """Convex combination of normalised scores: ``sum_i w_i * norm_i(score_i(doc))`` with the weights
    rescaled to sum to 1 — CombSUM (Fox and Shaw, "Combination of Multiple Searches", TREC-2 1994) with
    per-list min-max normalisation (Lee, SIGIR 1997), the "convex combination" that Bruch, Gai and
    Ingber ("An Analysis of Fusion Functions for Hybrid Retrieval", ACM TOIS 2023) find more accurate
    than RRF when the weight is tuned.

    ``scores``: one ``{key: score}`` mapping per retriever (higher is better), e.g. each retriever's
    top candidates. ``normalization``: ``"minmax"`` maps each list to [0, 1]; ``"zscore"`` subtracts
    the list's mean and divides by its standard deviation; ``"none"`` uses raw scores (only meaningful
    when they share a scale). A key missing from a list counts as that list's minimum (it was not
    retrieved, so it scores at most what the list's last candidate scored). A list whose scores are
    all equal (one hit, e.g. the only document holding a rare term) gives its keys 1 and keys it did not
    retrieve 0. Returns ``[(key, fused score)]`` best first; ties keep the
    order keys were first seen. Raises ``ValueError`` for bad weights, an unknown normalization, or
    non-finite scores.

    >>> weighted_score_fusion([{"a": 0.9, "b": 0.5, "c": 0.1}, {"c": 12.0, "a": 4.0}], weights=[0.5, 0.5])
    [('a', 0.5), ('c', 0.5), ('b', 0.25)]
    >>> weighted_score_fusion([{"a": 0.9, "b": 0.5, "c": 0.1}, {"c": 12.0, "a": 4.0}], weights=[3, 1])
    [('a', 0.75), ('b', 0.375), ('c', 0.25)]
    >>> weighted_score_fusion([{"a": 0.9, "b": 0.5}, {"b": 3.0}], weights=[0.5, 0.5])  # b: the one lexical hit
    [('a', 0.5), ('b', 0.5)]
    >>> weighted_score_fusion([{"a": 2.0, "b": 0.0}], weights=[1], normalization="zscore")
    [('a', 1.0), ('b', -1.0)]
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")
    weights = _check_weights(weights, len(scores), convex=True)
    normalised = [_normalize(s, normalization) for s in scores]
    keys = dict.fromkeys(key for s in scores for key in s)  # every key once, in first-seen order
    fused = {key: sum(w * values.get(key, floor) for w, (values, floor) in zip(weights, normalised))
             for key in keys}
    return _sorted(fused)


__all__ = ["reciprocal_rank_fusion", "weighted_score_fusion", "NORMALIZATIONS"]
