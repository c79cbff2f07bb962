"""Hybrid retrieval options of :meth:`EmbeddingIndex.search <sentencekit.search.index.EmbeddingIndex.search>`:
checking them, and fusing each side's candidates (dense vectors, BM25) into one ranking per query.

Each side retrieves ``candidates`` documents (default ``max(k, 100)``), then the lists are fused by
:mod:`sentencekit.search.fusion`; every fused document records which side(s) found it, at which rank
and with which score (``"found_by"``), which is what one reads to see why a hit is there.

>>> fuse({"dense": [(7, 0.9), (3, 0.8)], "lexical": [(3, 11.0)]}, "rrf", (1.0, 1.0), 60, k=2)  # doctest: +ELLIPSIS
[(3, 0.0325..., {'dense': {'rank': 2, 'score': 0.8}, 'lexical': {'rank': 1, 'score': 11.0}}), (7, 0.0163..., ...)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sentencekit.search.fusion import reciprocal_rank_fusion, weighted_score_fusion

RETRIEVALS = ("dense", "lexical", "hybrid")
FUSIONS = ("rrf", "weighted")
DEFAULT_CANDIDATES = 100  # per side, before fusion: deep enough that a document one side ranks low still counts
DEFAULT_WEIGHTS = {"rrf": (1.0, 1.0), "weighted": (0.5, 0.5)}  # (dense, lexical)


def check_options(retrieval: str, fusion: str, fusion_weights: Sequence[float] | None, rrf_k: float,
                  candidates: int | None) -> tuple[float, float]:
    """Validate the hybrid options of ``search``; returns the ``(dense, lexical)`` weights to use.

    >>> check_options("hybrid", "weighted", None, 60, None)
    (0.5, 0.5)
    >>> check_options("sparse", "rrf", None, 60, None)
    Traceback (most recent call last):
    ...
    ValueError: retrieval must be one of dense, lexical, hybrid, got 'sparse'
    """
    if retrieval not in RETRIEVALS:
        raise ValueError(f"retrieval must be one of {', '.join(RETRIEVALS)}, got {retrieval!r}")
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(FUSIONS)} (reciprocal rank fusion, weighted score "
                         f"fusion), got {fusion!r}")
    if not isinstance(rrf_k, (int, float)) or not math.isfinite(rrf_k) or rrf_k < 0:
        raise ValueError(f"rrf_k must be a non-negative number (60 in Cormack et al.), got {rrf_k!r}")
    if candidates is not None and (not isinstance(candidates, int) or candidates <= 0):
        raise ValueError(f"candidates must be a positive integer (documents each side retrieves), got {candidates!r}")
    weights = DEFAULT_WEIGHTS[fusion] if fusion_weights is None else tuple(float(w) for w in fusion_weights)
    if len(weights) != 2 or any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"fusion_weights must be two non-negative numbers (dense, lexical), not both 0; "
                         f"got {fusion_weights!r}")
    return weights[0], weights[1]


def candidate_depth(k: int, candidates: int | None) -> int:
    """Documents each side retrieves before fusion: ``candidates`` (fewer than ``k`` can return fewer
    than ``k`` hits), default ``max(k, 100)``.

    >>> candidate_depth(10, None), candidate_depth(500, None), candidate_depth(10, 30)
    (100, 500, 30)
    """
    return candidates if candidates is not None else max(k, DEFAULT_CANDIDATES)


def fuse(sides: dict[str, list[tuple[int, float]]], fusion: str, weights: tuple[float, float], rrf_k: float,
         k: int) -> list[tuple[int, float, dict[str, dict[str, Any]]]]:
    """Fuse one query's candidate lists ``{side: [(document, score)] best first}`` (``"dense"`` and/or
    ``"lexical"``) into the ``k`` best ``(document, fused score, found_by)``. One side alone keeps its
    own scores. ``found_by`` maps each side that retrieved the document to ``{"rank", "score"}``.

    >>> fuse({"lexical": [(4, 2.5)]}, "rrf", (1.0, 1.0), 60, k=5)
    [(4, 2.5, {'lexical': {'rank': 1, 'score': 2.5}})]
    """
    found_by: dict[int, dict[str, dict[str, Any]]] = {}
    for side, hits in sides.items():
        for rank, (doc, score) in enumerate(hits, 1):
            found_by.setdefault(doc, {})[side] = {"rank": rank, "score": float(score)}
    lists = list(sides.values())
    if len(lists) == 1:
        fused = [(doc, float(score)) for doc, score in lists[0]]
    else:
        side_weights = [dict(zip(("dense", "lexical"), weights))[side] for side in sides]
        if fusion == "rrf":
            fused = reciprocal_rank_fusion([[doc for doc, _ in hits] for hits in lists], k=rrf_k, weights=side_weights)
        else:
            fused = weighted_score_fusion([dict(hits) for hits in lists], side_weights)
    return [(doc, score, found_by[doc]) for doc, score in fused[:k]]


__all__ = ["RETRIEVALS", "FUSIONS", "DEFAULT_CANDIDATES", "check_options", "candidate_depth", "fuse"]
