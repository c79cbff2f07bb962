"""Hierarchical token pooling in NumPy (torch-free): shrink a document's token vectors by merging similar
ones, for multi-vector (ColBERT-style) indexes. Clavié, Chaffin & Adams, "Reducing the Footprint of
Multi-Vector Retrieval with Minimal Performance Impact via Token Pooling" (arXiv:2409.14683); behaviour as
sentence-transformers 6.2's ``HierarchicalTokenPooling``:

set aside the first ``num_protected_tokens`` vectors (the ``[CLS]``); cluster the rest by Ward linkage on the
cosine distance ``clamp(1 - E E^T, 0, 2)`` (float32) into ``max(n // pool_factor, 1)`` clusters (scipy's
``fcluster(criterion="maxclust")``; ``fastcluster``'s linkage when it is installed, which breaks exact ties
differently); replace each cluster by its mean; output the protected vectors, then the means, L2-normalised
when asked. ``pool_factor <= 1`` merges nothing (normalisation still applies).

:func:`ward_labels` is shared with the torch module (:class:`sentencekit.modules.HierarchicalTokenPooling`),
which computes the distances and means in torch so that gradients reach the means.

>>> e = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1], [0.7, 0.7]], dtype=np.float32)
>>> hierarchical_pool_array(e, pool_factor=2, num_protected_tokens=1).shape   # 1 protected + 4 // 2 clusters
(3, 2)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np


@functools.cache
def _linkage() -> Callable[..., np.ndarray]:
    try:
        from fastcluster import linkage
    except ImportError:
        try:
            from scipy.cluster.hierarchy import linkage
        except ImportError:
            raise ImportError("Hierarchical token pooling needs scipy: pip install 'sentencekit[multivector]'.") \
                from None
    return linkage


def check_pooling(pool_factor: float, num_protected_tokens: int) -> None:
    """``ValueError`` for ``pool_factor < 1`` or a negative ``num_protected_tokens``."""
    if not isinstance(pool_factor, (int, float)) or isinstance(pool_factor, bool) or pool_factor < 1:
        raise ValueError(f"pool_factor must be a number >= 1, got {pool_factor!r}.")
    if not isinstance(num_protected_tokens, int) or isinstance(num_protected_tokens, bool) or num_protected_tokens < 0:
        raise ValueError(f"num_protected_tokens must be an integer >= 0, got {num_protected_tokens!r}.")


def num_clusters(num_tokens: int, pool_factor: float) -> int:
    """How many clusters ``num_tokens`` poolable vectors become."""
    return max(int(num_tokens // pool_factor), 1)


def ward_labels(distances: np.ndarray, clusters: int) -> np.ndarray:
    """Cluster of each of ``n`` vectors (``[n]`` int64, dense ids ``0..k-1`` in order of first label) from
    their square ``[n, n]`` distance matrix, cut into at most ``clusters`` clusters by Ward linkage."""
    from scipy.cluster import hierarchy
    from scipy.spatial.distance import squareform

    condensed = squareform(np.asarray(distances, dtype=np.float64), checks=False)
    labels = hierarchy.fcluster(_linkage()(condensed, method="ward"), t=clusters, criterion="maxclust") - 1
    return np.unique(labels, return_inverse=True)[1].astype(np.int64).reshape(-1)


def l2_rows(x: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm (at least 1e-12), as ``torch.nn.functional.normalize``."""
    norms = np.sqrt((x.astype(np.float32) ** 2).sum(axis=-1, keepdims=True))
    return (x / np.maximum(norms, 1e-12)).astype(x.dtype, copy=False)


def hierarchical_pool_array(embedding: np.ndarray, pool_factor: float, num_protected_tokens: int = 1,
                            normalize_embeddings: bool = True) -> np.ndarray:
    """One document's ``[n, dim]`` token vectors pooled to ``[m, dim]`` (``m <= n``; see the module
    docstring). Needs scipy (``ImportError`` saying how to install it otherwise)."""
    embedding = np.asarray(embedding)
    protected, to_pool = embedding[:num_protected_tokens], embedding[num_protected_tokens:]
    clusters = num_clusters(len(to_pool), pool_factor)
    if clusters < len(to_pool):
        vectors = to_pool.astype(np.float32)
        distances = np.clip(1.0 - vectors @ vectors.T, 0.0, 2.0)
        labels = ward_labels(distances, clusters)
        count = int(labels.max()) + 1
        sums = np.zeros((count, to_pool.shape[1]), dtype=to_pool.dtype)
        np.add.at(sums, labels, to_pool)
        pooled = sums / np.bincount(labels, minlength=count)[:, None].astype(to_pool.dtype)
        embedding = np.concatenate([protected, pooled.astype(embedding.dtype, copy=False)])
    return l2_rows(embedding) if normalize_embeddings else embedding


def repad(rows: list[np.ndarray], dim: int, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` (``[m_i, dim]`` arrays) right-padded with zeros into ``[n, max m_i, dim]``, and their mask
    ``[n, max m_i]`` bool."""
    width = max((len(r) for r in rows), default=0)
    padded = np.zeros((len(rows), width, dim), dtype=dtype)
    mask = np.zeros((len(rows), width), dtype=bool)
    for i, row in enumerate(rows):
        padded[i, :len(row)], mask[i, :len(row)] = row, True
    return padded, mask


def pool_padded(tokens: np.ndarray, mask: np.ndarray, config: dict[str, Any], task: str | None,
                ) -> tuple[np.ndarray, np.ndarray]:
    """A saved ``HierarchicalTokenPooling`` (its ``config``) run as a pipeline module on a padded batch
    ``[n, t, dim]`` with its scoring mask, as the torch module's ``forward`` does: inputs of other tasks pass
    through; ``pool_factor <= 1`` only normalises (when asked); else each row's scored tokens are pooled and
    the rows right-padded again, with a new mask."""
    if (task or "document") not in (config.get("tasks") or ["document"]):
        return tokens, mask
    if float(config.get("pool_factor", 1.0)) <= 1:
        return (l2_rows(tokens) if config.get("normalize_embeddings", False) else tokens), mask
    if not len(tokens):
        return tokens, mask
    rows = pool_rows([t[m.astype(bool)] for t, m in zip(tokens, mask)], config)
    return repad(rows, tokens.shape[-1], tokens.dtype)


def pool_rows(rows: list[Any], config: dict[str, Any]) -> list[np.ndarray]:
    """:func:`hierarchical_pool_array` over a list of ``[n_i, dim]`` arrays, with a saved
    ``HierarchicalTokenPooling`` config (``pool_factor``, ``num_protected_tokens``, ``normalize_embeddings``)."""
    factor = float(config.get("pool_factor", 1.0))
    protected = int(config.get("num_protected_tokens", 1))
    normalize = bool(config.get("normalize_embeddings", False))
    if factor <= 1:
        return [l2_rows(np.asarray(r)) if normalize else np.asarray(r) for r in rows]
    return [hierarchical_pool_array(r, factor, protected, normalize) for r in rows]


__all__ = ["hierarchical_pool_array", "ward_labels", "num_clusters", "check_pooling", "l2_rows", "pool_rows",
           "pool_padded", "repad"]
