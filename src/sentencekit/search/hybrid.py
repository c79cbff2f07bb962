"""Retrieval other than plain dense search in :meth:`EmbeddingIndex.search
<sentencekit.search.index.EmbeddingIndex.search>`: checking the options, choosing the sides to fuse (dense
vectors, learned-sparse vectors, late-interaction token vectors, BM25) and fusing each side's candidates into
one ranking per query.

Each side retrieves ``candidates`` documents (default ``max(k, 100)``), then the lists are fused by
:mod:`sentencekit.search.fusion`; every fused document records which side(s) found it, at which rank
and with which score (``"found_by"``), which is what one reads to see why a hit is there.

>>> fuse({"dense": [(7, 0.9), (3, 0.8)], "lexical": [(3, 11.0)]}, "rrf", {"dense": 1.0, "lexical": 1.0}, 60, k=2)
... # doctest: +ELLIPSIS
[(3, 0.0325..., {'dense': {'rank': 2, 'score': 0.8}, 'lexical': {'rank': 1, 'score': 11.0}}), (7, 0.0163..., ...)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sentencekit.search.fusion import reciprocal_rank_fusion, weighted_score_fusion
from sentencekit.search.results import lexical_row, make_hit

RETRIEVALS = ("dense", "lexical", "sparse", "multivector", "hybrid")
FUSIONS = ("rrf", "weighted")
SIDES = ("dense", "sparse", "multivector", "lexical")  # fusion order; a hit's chunk: the first side's best row
DEFAULT_CANDIDATES = 100  # per side, before fusion: deep enough that a document one side ranks low still counts

Weights = tuple[float, ...] | dict[str, float] | None


def check_options(retrieval: str, fusion: str, fusion_weights: Sequence[float] | Mapping[str, float] | None,
                  rrf_k: float, candidates: int | None) -> Weights:
    """Validate the retrieval options of ``search``; returns ``fusion_weights`` as a tuple of floats (one per
    fused side, in the order dense, sparse, multivector, lexical of the sides used), a dict ``{side: weight}`` (only
    those sides are fused) or ``None`` (equal weights); :func:`hybrid_sides` matches them to the sides.

    >>> check_options("hybrid", "weighted", (1, 3), 60, None)
    (1.0, 3.0)
    >>> check_options("semantic", "rrf", None, 60, None)
    Traceback (most recent call last):
    ...
    ValueError: retrieval must be one of dense, lexical, sparse, multivector, hybrid, got 'semantic'
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
    if fusion_weights is None:
        return None
    named = isinstance(fusion_weights, Mapping)
    if named and any(side not in SIDES for side in fusion_weights):
        raise ValueError(f"fusion_weights names unknown sides {sorted(set(fusion_weights) - set(SIDES))}; the sides "
                         f"are {', '.join(SIDES)}")
    values = [float(w) for w in (fusion_weights.values() if named else fusion_weights)]
    if not values or any(not math.isfinite(w) or w < 0 for w in values) or sum(values) <= 0:
        raise ValueError("fusion_weights must be non-negative numbers, one per fused side (dense, then sparse, "
                         "multivector and lexical as the index keeps them) or a dict {side: weight}, not all 0; "
                         f"got {fusion_weights!r}")
    return dict(zip(fusion_weights, values)) if named else tuple(values)


def hybrid_sides(retrieval: str, weights: Weights, *, has_sparse: bool, has_lexical: bool,
                 has_multivector: bool = False) -> dict[str, float]:
    """The sides ``retrieval`` fuses and their weights. ``"lexical"`` / ``"sparse"`` / ``"multivector"``: that
    side alone. ``"hybrid"``: the sides a dict of weights names; otherwise dense, plus the sparse and the
    multi-vector side if the index keeps them, plus the lexical side if it keeps one or has neither of those
    (then the lexical side is built). A tuple of weights needs one weight per side; default 1 each
    (``weighted`` fusion rescales them to sum 1).

    >>> hybrid_sides("hybrid", None, has_sparse=True, has_lexical=False)
    {'dense': 1.0, 'sparse': 1.0}
    >>> hybrid_sides("hybrid", (0.3, 0.7), has_sparse=False, has_lexical=False)
    {'dense': 0.3, 'lexical': 0.7}
    >>> hybrid_sides("hybrid", None, has_sparse=False, has_lexical=True, has_multivector=True)
    {'dense': 1.0, 'multivector': 1.0, 'lexical': 1.0}
    """
    if retrieval != "hybrid":
        return {retrieval: 1.0}
    if isinstance(weights, dict):
        if len(weights) < 2:  # one side is not a fusion: its raw scores and hits would pass as hybrid ones
            raise ValueError(f"hybrid retrieval fuses at least two sides; fusion_weights names only "
                             f"{', '.join(weights)}. Name two or more sides, or use retrieval={next(iter(weights))!r}")
        return {side: weights[side] for side in SIDES if side in weights}
    learned = (["sparse"] if has_sparse else []) + (["multivector"] if has_multivector else [])
    sides = ["dense"] + learned + (["lexical"] if has_lexical or not learned else [])
    if weights is None:
        return dict.fromkeys(sides, 1.0)
    if len(weights) != len(sides):
        raise ValueError(f"fusion_weights: got {len(weights)} weights for the {len(sides)} sides this index fuses "
                         f"({', '.join(sides)}); pass one per side, or a dict {{side: weight}}")
    return dict(zip(sides, weights))


def candidate_depth(k: int, candidates: int | None) -> int:
    """Documents each side retrieves before fusion: ``candidates`` (fewer than ``k`` can return fewer
    than ``k`` hits), default ``max(k, 100)``.

    >>> candidate_depth(10, None), candidate_depth(500, None), candidate_depth(10, 30)
    (100, 500, 30)
    """
    return candidates if candidates is not None else max(k, DEFAULT_CANDIDATES)


def fuse(sides: dict[str, list[tuple[int, float]]], fusion: str, weights: dict[str, float], rrf_k: float,
         k: int) -> list[tuple[int, float, dict[str, dict[str, Any]]]]:
    """Fuse one query's candidate lists ``{side: [(document, score)] best first}`` into the ``k`` best
    ``(document, fused score, found_by)``, each side weighted by ``weights[side]``. One side alone keeps its
    own scores. ``found_by`` maps each side that retrieved the document to ``{"rank", "score"}``.

    >>> fuse({"lexical": [(4, 2.5)]}, "rrf", {"lexical": 1.0}, 60, k=5)
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
        side_weights = [weights[side] for side in sides]
        if fusion == "rrf":
            fused = reciprocal_rank_fusion([[doc for doc, _ in hits] for hits in lists], k=rrf_k, weights=side_weights)
        else:
            fused = weighted_score_fusion([dict(hits) for hits in lists], side_weights)
    return [(doc, score, found_by[doc]) for doc, score in fused[:k]]


def fused_results(snap: Any, queries: list[str], found: dict[str, list[list[tuple[int, int | None, float]]]],
                  fusion: str, weights: dict[str, float], rrf_k: float, k: int) -> list[list[dict[str, Any]]]:
    """Per query the ``k`` best hits of the fused sides, each with ``"found_by"``. ``found``: per side, per
    query ``[(document, row or None, score)]`` best first (``None``: the side scores whole documents, BM25).
    A chunked document reports the chunk the first side (in ``found``'s order) found, else the chunk holding
    most query terms."""
    results = []
    for q, query in enumerate(queries):
        rows: dict[int, int] = {}
        for hits in found.values():
            for doc, row, _ in hits[q]:
                if row is not None:
                    rows.setdefault(doc, row)
        fused = fuse({side: [(doc, score) for doc, _, score in hits[q]] for side, hits in found.items()},
                     fusion, weights, rrf_k, k)
        results.append([{**make_hit(snap, doc, rows[doc] if doc in rows else lexical_row(snap, doc, query), score),
                         "found_by": found_by} for doc, score, found_by in fused])
    return results


__all__ = ["RETRIEVALS", "FUSIONS", "SIDES", "DEFAULT_CANDIDATES", "check_options", "hybrid_sides",
           "candidate_depth", "fuse", "fused_results"]
