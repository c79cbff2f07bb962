"""Fast community detection (sentence-transformers' ``util.community_detection``): groups of embeddings
whose cosine similarity to a central point is at least ``threshold``.

>>> community_detection([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0]], threshold=0.9, min_community_size=2)
[[0, 1]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sentencekit.similarity import to_tensor


def community_detection(
    embeddings: Any,
    threshold: float = 0.75,
    min_community_size: int = 10,
    batch_size: int = 1024,
    show_progress_bar: bool = False,
) -> list[list[int]]:
    """Communities of at least ``min_community_size`` entries, largest first and non-overlapping.

    Every entry with enough neighbours at cosine >= ``threshold`` proposes a community: itself first,
    then its neighbours by decreasing similarity. Proposals are taken largest first; entries already
    claimed are removed from later ones, and a proposal whose centre is claimed, or that shrinks below
    ``min_community_size``, is dropped.

    >>> emb = [[1.0, 0.0], [0.95, 0.05], [0.9, 0.1], [0.0, 1.0], [0.05, 0.95]]
    >>> community_detection(emb, threshold=0.9, min_community_size=2)
    [[0, 1, 2], [3, 4]]
    """
    if len(embeddings) == 0:
        return []
    emb = to_tensor(embeddings)
    min_community_size = max(1, int(min_community_size))
    if len(emb) < min_community_size:
        return []
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    emb = F.normalize(emb, p=2, dim=1)
    proposals = _proposals(emb, threshold, min_community_size, batch_size, show_progress_bar)
    proposals.sort(key=lambda p: len(p[1]), reverse=True)  # stable: equal sizes keep centre order

    used = np.zeros(len(emb), dtype=bool)
    communities: list[list[int]] = []
    for center, members in proposals:
        if used[center]:
            continue
        free = members[~used[members]]
        if len(free) >= min_community_size:
            community = [center] + free[free != center].tolist()
            communities.append(community)
            used[community] = True
    return sorted(communities, key=len, reverse=True)


def _proposals(emb: torch.Tensor, threshold: float, min_size: int, batch_size: int,
               show_progress_bar: bool) -> list[tuple[int, np.ndarray]]:
    """``(centre, members sorted by decreasing similarity)`` for each entry with >= ``min_size``
    neighbours at or above ``threshold`` (itself included, as in sentence-transformers)."""
    starts = range(0, len(emb), batch_size)
    if show_progress_bar:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="Finding clusters")
    proposals = []
    for start in starts:
        scores = emb[start : start + batch_size] @ emb.T
        counts = (scores >= threshold).sum(dim=1)
        rows = torch.nonzero(counts >= min_size).flatten()
        if len(rows) == 0:
            continue
        k = int(counts[rows].max())
        _, order = torch.topk(scores[rows], k=k, dim=1)  # best first; each row keeps its first `count`
        for row, count, members in zip(rows.tolist(), counts[rows].tolist(), order.cpu().numpy()):
            proposals.append((start + row, members[:count].astype(np.int64)))
    return proposals
