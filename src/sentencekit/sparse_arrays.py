"""Sparse embeddings as SciPy / NumPy arrays, without torch: what ``SparseEncoder`` on the torch-free backend
returns (``scipy.sparse.csr_matrix`` ``[n, dim]`` float32, or dense NumPy rows) and the helpers that read
them: the similarity functions (all-pairs ``[n, m]`` and pairwise ``[n]``, dense NumPy results),
:func:`sparsity`, :func:`intersection` and :func:`top_weights` (what ``decode`` lists). The torch twin is
:mod:`sentencekit.sparse_tensors`; the math and conventions are the same (sentence-transformers 6.2).

Inputs may be ``scipy.sparse`` matrices / arrays, NumPy arrays (``[dim]`` or ``[n, dim]``), lists of
those, or torch tensors (converted; torch is then loaded already). SciPy matrices are always 2-D, so one
embedding is a ``[1, dim]`` matrix (``encode("text")`` on the torch-free backend); the all-pairs functions
treat a ``[dim]`` input as one row, the pairwise ones give one 0-d score for two ``[dim]`` NumPy vectors.

>>> import numpy as np, scipy.sparse as sp
>>> a = sp.csr_matrix(np.array([[0.0, 2.0, 0.0, 1.0]], dtype=np.float32))
>>> sparsity(a)
{'active_dims': 2.0, 'sparsity_ratio': 0.5}
>>> dot_score(a, np.ones(4, dtype=np.float32)).tolist()
[[3.0]]
>>> top_weights(a, None)
[([1, 3], [2.0, 1.0])]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np


def is_torch(x: Any) -> bool:
    """Whether ``x`` is a torch tensor or a list of them (answered without importing torch)."""
    if isinstance(x, (list, tuple)) and x:
        x = x[0]
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def is_vector(x: Any) -> bool:
    """Whether ``x`` is one embedding ``[dim]`` (a 1-D array or tensor; SciPy matrices are 2-D)."""
    return getattr(x, "ndim", 2) == 1 and not _is_scipy(x)


def _is_scipy(x: Any) -> bool:
    return type(x).__module__.startswith("scipy.sparse")


def _is_scipy_rows(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and bool(x) and _is_scipy(x[0])


def as_csr(x: Any) -> Any:
    """``x`` as a new 2-D ``scipy.sparse.csr_matrix`` float32 with sorted terms and no stored zeros (a
    ``[dim]`` input is one row; a list of rows is stacked; the caller's matrix is never modified). Raises
    ``ValueError`` for an input of another shape."""
    from scipy import sparse

    if is_torch(x):
        from sentencekit.search.sparse_side import to_csr  # the one torch -> CSR converter

        return to_csr(x)
    if _is_scipy_rows(x):
        return sparse.vstack([as_csr(row) for row in x], format="csr")
    if _is_scipy(x):
        m = sparse.csr_matrix(x, dtype=np.float32, copy=True)
    else:
        array = np.asarray(x, dtype=np.float32)
        if array.ndim not in (1, 2):
            raise ValueError(f"Expected embeddings of shape [n, dim] (or [dim]), got shape {tuple(array.shape)}")
        m = sparse.csr_matrix(np.atleast_2d(array))
    m.sum_duplicates()
    m.eliminate_zeros()
    return m


def _pair(a: Any, b: Any) -> tuple[Any, Any]:
    a, b = as_csr(a), as_csr(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"Cannot compare embeddings of dimension {a.shape[1]} with embeddings of dimension "
                         f"{b.shape[1]}: were they made by different models?")
    return a, b


def _row_norms(m: Any, p: int = 2) -> np.ndarray:
    values = abs(m).sum(axis=1) if p == 1 else np.sqrt(m.multiply(m).sum(axis=1))
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _unit_rows(m: Any) -> Any:
    from scipy import sparse

    return sparse.diags(1.0 / np.maximum(_row_norms(m), 1e-12)) @ m


def _dense(m: Any) -> np.ndarray:
    return np.asarray(m.toarray() if hasattr(m, "toarray") else m, dtype=np.float32)


# -- all pairs: [n, dim] x [m, dim] -> [n, m] -------------------------------------------------------------
def dot_score(a: Any, b: Any) -> np.ndarray:
    """All-pairs dot products, dense float32 ``[n, m]``."""
    a, b = _pair(a, b)
    return _dense(a @ b.T)


def cos_sim(a: Any, b: Any) -> np.ndarray:
    """All-pairs cosine similarity, dense float32 ``[n, m]`` (an all-zero row scores 0)."""
    a, b = _pair(a, b)
    return _dense(_unit_rows(a) @ _unit_rows(b).T)


def euclidean_sim(a: Any, b: Any) -> np.ndarray:
    """All-pairs negated euclidean distance, dense float32 ``[n, m]``."""
    a, b = _pair(a, b)
    squared = _row_norms(a)[:, None] ** 2 + _row_norms(b)[None, :] ** 2 - 2 * (a @ b.T).toarray()
    return -np.sqrt(np.clip(squared, 0, None)).astype(np.float32)


def manhattan_sim(a: Any, b: Any) -> np.ndarray:
    """All-pairs negated manhattan distance, dense float32 ``[n, m]``, without densifying the vocabulary:
    ``|a - b|_1 = |a|_1 + |b|_1 + sum over a's terms j of (|b_j - a_j| - |a_j| - |b_j|)`` (the sum's terms
    are 0 wherever ``b_j = 0``), so each row of ``a`` costs ``m x nnz(row)``."""
    a, b = _pair(a, b)
    b_cols = b.tocsc()
    out = _row_norms(a, 1)[:, None] + _row_norms(b, 1)[None, :]
    for i in range(a.shape[0]):
        lo, hi = a.indptr[i], a.indptr[i + 1]
        if lo == hi:
            continue
        cols, values = a.indices[lo:hi], a.data[lo:hi].astype(np.float64)
        shared = b_cols[:, cols].toarray()
        out[i] += (np.abs(shared - values) - np.abs(values) - np.abs(shared)).sum(axis=1)
    return -out.astype(np.float32)


# -- pairwise: row i of a with row i of b -> [n] -------------------------------------------------------------
def _same_rows(a: Any, b: Any) -> tuple[Any, Any]:
    a, b = _pair(a, b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"Pairwise similarity needs as many rows in a ({a.shape[0]}) as in b ({b.shape[0]}).")
    return a, b


def _row_sums(m: Any) -> np.ndarray:
    return np.asarray(m.sum(axis=1), dtype=np.float32).reshape(-1)


def _one_score_for_vectors(fn: Callable[[Any, Any], np.ndarray]) -> Callable[[Any, Any], Any]:
    import functools

    @functools.wraps(fn)
    def wrapper(a: Any, b: Any) -> Any:
        scores = fn(a, b)
        return scores[0] if is_vector(a) and is_vector(b) else scores

    return wrapper


@_one_score_for_vectors
def pairwise_dot_score(a: Any, b: Any) -> np.ndarray:
    a, b = _same_rows(a, b)
    return _row_sums(a.multiply(b))


@_one_score_for_vectors
def pairwise_cos_sim(a: Any, b: Any) -> np.ndarray:
    a, b = _same_rows(a, b)
    return _row_sums(_unit_rows(a).multiply(_unit_rows(b)))


@_one_score_for_vectors
def pairwise_euclidean_sim(a: Any, b: Any) -> np.ndarray:
    a, b = _same_rows(a, b)
    diff = a - b
    return -np.sqrt(_row_sums(diff.multiply(diff)))


@_one_score_for_vectors
def pairwise_manhattan_sim(a: Any, b: Any) -> np.ndarray:
    a, b = _same_rows(a, b)
    return -_row_sums(abs(a - b))


ALL_PAIRS: dict[str, Callable[[Any, Any], np.ndarray]] = {
    "cosine": cos_sim, "dot": dot_score, "euclidean": euclidean_sim, "manhattan": manhattan_sim}
PAIRWISE: dict[str, Callable[[Any, Any], Any]] = {
    "cosine": pairwise_cos_sim, "dot": pairwise_dot_score, "euclidean": pairwise_euclidean_sim,
    "manhattan": pairwise_manhattan_sim}


# -- reading embeddings ------------------------------------------------------------------------------------------
def sparsity(embeddings: Any) -> dict[str, float]:
    """``{"active_dims": mean non-zero entries per row, "sparsity_ratio": 1 - active_dims / dim}`` of a 1-D
    or 2-D array / sparse matrix; no rows: ``{0.0, 1.0}``. Raises ``ValueError`` for other shapes."""
    if _is_scipy_rows(embeddings):  # encode(..., convert_to_tensor=False): a list of [1, dim] rows
        embeddings = as_csr(embeddings)
    ndim = getattr(embeddings, "ndim", None)
    if ndim is None:
        embeddings = np.asarray(embeddings, dtype=np.float32)
        ndim = embeddings.ndim
    if ndim not in (1, 2):
        raise ValueError(f"sparsity() takes a 1-D or 2-D array, got shape {tuple(embeddings.shape)}")
    shape = (1, embeddings.shape[0]) if ndim == 1 else tuple(embeddings.shape)
    if shape[0] == 0 or shape[1] == 0:
        return {"active_dims": 0.0, "sparsity_ratio": 1.0}
    if _is_scipy(embeddings):
        nonzero = int(np.count_nonzero(embeddings.tocsr().data))
    else:
        nonzero = int(np.count_nonzero(np.asarray(embeddings)))
    active = nonzero / shape[0]
    return {"active_dims": float(active), "sparsity_ratio": float(1.0 - active / shape[1])}


def intersection(embeddings_1: Any, embeddings_2: Any) -> Any:
    """The element-wise product of one embedding (``[dim]``, or a one-row sparse matrix ``[1, dim]``) with
    each row of ``embeddings_2`` (``[dim]`` or ``[n, dim]``), as a ``csr_matrix`` ``[n, dim]`` (``[1, dim]``
    for one row) keeping only the entries > 0 (products, as sentence-transformers returns). Raises
    ``ValueError`` when ``embeddings_1`` is more than one row or the dimensions differ."""
    e1, e2 = as_csr(embeddings_1), as_csr(embeddings_2)
    if e1.shape[0] != 1:
        raise ValueError(f"intersection() needs one embeddings_1 ([dim] or [1, dim]), got shape {e1.shape}")
    if e1.shape[1] != e2.shape[1]:
        raise ValueError(f"intersection(): embeddings_2 of shape {e2.shape} does not fit embeddings_1 of "
                         f"dimension {e1.shape[1]}")
    product = e2.multiply(e1).tocsr()  # broadcasts the one row over e2's rows
    product.data[product.data <= 0] = 0
    product.eliminate_zeros()
    return product.astype(np.float32)


def rows(embeddings: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(ids, weights)`` of each row's non-zero entries (ids ascending): one row for a ``[dim]`` array.
    Raises ``ValueError`` for an input that is not 1-D / 2-D."""
    if _is_scipy(embeddings) or _is_scipy_rows(embeddings):
        m = as_csr(embeddings)
        for i in range(m.shape[0]):
            lo, hi = m.indptr[i], m.indptr[i + 1]
            yield m.indices[lo:hi].astype(np.int64), m.data[lo:hi]
        return
    array = np.asarray(embeddings, dtype=np.float32)
    if array.ndim not in (1, 2):
        raise ValueError(f"decode() takes a 1-D or 2-D embedding, got shape {tuple(array.shape)}")
    for row in np.atleast_2d(array):
        ids = np.flatnonzero(row)
        yield ids, row[ids]


def top_weights(embeddings: Any, top_k: int | None) -> list[tuple[list[int], list[float]]]:
    """Per row (one for a ``[dim]`` array): ``(ids, weights)`` of the non-zero entries, largest weight
    first (ties: lower id first, as the torch twin), at most ``top_k``."""
    out = []
    for ids, weights in rows(embeddings):
        order = np.argsort(-weights, kind="stable")[:top_k]
        out.append((ids[order].tolist(), weights[order].astype(np.float64).tolist()))
    return out


__all__ = ["is_torch", "is_vector", "as_csr", "sparsity", "intersection", "rows", "top_weights", "dot_score",
           "cos_sim", "euclidean_sim", "manhattan_sim", "pairwise_dot_score", "pairwise_cos_sim",
           "pairwise_euclidean_sim", "pairwise_manhattan_sim", "ALL_PAIRS", "PAIRWISE"]
