"""Sparse embeddings as SciPy / NumPy arrays, without torch: what ``SparseEncoder`` on the torch-free backend
returns (``scipy.sparse.csr_matrix`` ``[n, dim]`` float32, or dense NumPy rows) and the helpers that read
them: the similarity functions (all-pairs ``[n, m]`` and pairwise ``[n]``, dense NumPy results),
:func:`sparsity` and :func:`top_weights` (what ``decode`` lists) for any input, :func:`intersection`.

The one conversion of any sparse-embedding output (torch sparse / dense tensors, lists of rows, SciPy
matrices, NumPy arrays) to canonical CSR lives here: :func:`csr_arrays` (NumPy arrays; SciPy is imported
only for a SciPy input), :func:`as_csr` (a SciPy matrix), :func:`encoder_output` (a model's output,
checked), :func:`rows` (per row). The torch-returning helpers (similarities and ``intersection`` on torch
inputs, as sentence-transformers 6.2 returns tensors there) are :mod:`sentencekit.sparse_tensors`; the math
and conventions are the same.

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
from typing import Any, NamedTuple

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


def _is_row_list(x: Any) -> bool:
    """A list of rows (tensors, SciPy matrices or arrays, each converted on its own) rather than nested numbers."""
    return isinstance(x, (list, tuple)) and bool(x) and getattr(x[0], "ndim", 0) >= 1


class CsrArrays(NamedTuple):
    """Sparse embeddings in canonical CSR form, as NumPy arrays: ``data`` float32 (no stored zeros),
    ``indices`` (terms ascending and unique within each row), ``indptr`` int64 ``[n + 1]``, ``shape``
    ``(n, dim)``. What :func:`csr_arrays` returns; :func:`as_csr` wraps it in a SciPy matrix."""

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]


def csr_arrays(x: Any) -> CsrArrays:
    """Any sparse-embedding output in canonical CSR form (:class:`CsrArrays`), new arrays (the caller's input
    is never modified): a torch tensor (sparse COO, uncoalesced included, with repeated terms summed; sparse
    CSR; dense; any float dtype, on any device), a SciPy sparse matrix, a NumPy array, nested lists of
    numbers, or a list of such rows (stacked; a list of :class:`CsrArrays` too). A ``[dim]`` input is one
    row. Torch and SciPy are imported only for their own inputs. Raises ``ValueError`` for an input that is
    not 1-D / 2-D, or rows of different widths.

    >>> arrays = csr_arrays([[0.0, 2.0, 0.0], [1.0, 0.0, 0.0]])
    >>> arrays.data.tolist(), arrays.indices.tolist(), arrays.indptr.tolist(), arrays.shape
    ([2.0, 1.0], [1, 0], [0, 1, 2], (2, 3))
    """
    if isinstance(x, CsrArrays):
        return x
    if isinstance(x, (list, tuple)) and x and all(isinstance(part, CsrArrays) for part in x):
        return _stack(list(x))
    if _is_row_list(x):
        return _stack([csr_arrays(row) for row in x])
    if _is_scipy(x):
        from scipy import sparse

        m = sparse.csr_matrix(x, dtype=np.float32, copy=True)
        m.sum_duplicates()  # sorts each row's terms, adds repeated ones
        m.eliminate_zeros()
        return CsrArrays(m.data, m.indices, m.indptr.astype(np.int64, copy=False), (int(m.shape[0]), int(m.shape[1])))
    if is_torch(x):
        return _from_torch(x)
    return _from_dense(np.asarray(x, dtype=np.float32))


def _check_ndim(shape: tuple[int, ...]) -> None:
    if len(shape) not in (1, 2):
        raise ValueError(f"Expected embeddings of shape [n, dim] (or [dim]), got shape {tuple(shape)}")


def _from_dense(array: np.ndarray) -> CsrArrays:
    _check_ndim(array.shape)
    array = np.atleast_2d(array)
    row_ids, cols = np.nonzero(array)
    return _from_coordinates(row_ids, cols, array[row_ids, cols], array.shape)


def _from_torch(tensor: Any) -> CsrArrays:
    import torch  # already loaded: the input is a tensor

    _check_ndim(tuple(tensor.shape))
    tensor = tensor.detach()
    if tensor.layout == torch.strided:
        return _from_dense(tensor.float().cpu().numpy())
    coo = (tensor if tensor.layout == torch.sparse_coo else tensor.to_sparse_coo()).float().coalesce()
    indices, values = coo.indices().cpu().numpy(), coo.values().cpu().numpy()
    if tensor.dim() == 1:
        return _from_coordinates(np.zeros_like(indices[0]), indices[0], values, (1, tensor.shape[0]))
    return _from_coordinates(indices[0], indices[1], values, tuple(tensor.shape))


def _from_coordinates(row_ids: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: Any) -> CsrArrays:
    """From unique ``(row, col)`` coordinates sorted by row, then column (``np.nonzero``, a coalesced tensor)."""
    n, dim = int(shape[0]), int(shape[1])
    keep = values != 0
    indptr = np.searchsorted(row_ids[keep], np.arange(n + 1)).astype(np.int64)
    return CsrArrays(values[keep].astype(np.float32), cols[keep].astype(_index_dtype(dim)), indptr, (n, dim))


def _index_dtype(dim: int) -> type:
    return np.int32 if dim <= np.iinfo(np.int32).max else np.int64


def _stack(parts: list[CsrArrays]) -> CsrArrays:
    dims = {p.shape[1] for p in parts}
    if len(dims) > 1:
        raise ValueError(f"Cannot stack sparse rows of different dimensions {sorted(dims)}")
    dim = dims.pop() if dims else 0
    indptr = np.zeros(sum(p.shape[0] for p in parts) + 1, dtype=np.int64)
    if parts:
        np.cumsum(np.concatenate([np.diff(p.indptr) for p in parts]), out=indptr[1:])
    data = np.concatenate([p.data for p in parts]) if parts else np.zeros(0, np.float32)
    indices = np.concatenate([p.indices for p in parts]) if parts else np.zeros(0, _index_dtype(dim))
    return CsrArrays(data, indices, indptr, (len(indptr) - 1, dim))


def encoder_output(output: Any, n: int | None = None) -> CsrArrays:
    """What a sparse encoder's ``encode`` returned (any form :func:`csr_arrays` reads), checked: the empty
    result of ``encode([])`` (``[]``, or a shape-``(0,)`` tensor / array) is no rows; ``n``: the number of rows
    expected (``ValueError`` otherwise); NaN or infinite weights raise ``ValueError``.

    >>> encoder_output([]).shape
    (0, 0)
    >>> encoder_output(np.ones((2, 3)), 3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: The sparse model returned 2 rows for 3 texts; ...
    """
    empty = (isinstance(output, (list, tuple)) and not output) or (
        getattr(output, "ndim", None) == 1 and output.shape[0] == 0 and not _is_scipy(output))
    arrays = _stack([]) if empty else csr_arrays(output)
    if n is not None and arrays.shape[0] != n:
        raise ValueError(f"The sparse model returned {arrays.shape[0]} rows for {n} texts; it must return one "
                         "sparse vector per text, shaped [n, vocab].")
    if not np.isfinite(arrays.data).all():
        raise ValueError("The sparse model returned NaN or infinite weights.")
    return arrays


def as_csr(x: Any) -> Any:
    """``x`` (any input of :func:`csr_arrays`, or its result) as a new 2-D ``scipy.sparse.csr_matrix`` float32
    with sorted terms and no stored zeros (a ``[dim]`` input is one row; a list of rows is stacked; the
    caller's matrix is never modified). Raises ``ValueError`` for an input of another shape."""
    from scipy import sparse

    data, indices, indptr, shape = csr_arrays(x)
    return sparse.csr_matrix((data, indices, indptr), shape=shape)


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
    or 2-D embedding (any input of :func:`csr_arrays`: torch tensors too, the result is the same dict); no
    rows: ``{0.0, 1.0}``. Raises ``ValueError`` for other shapes."""
    _, _, indptr, (n, dim) = csr_arrays(embeddings)
    if n == 0 or dim == 0:
        return {"active_dims": 0.0, "sparsity_ratio": 1.0}
    active = int(indptr[-1]) / n
    return {"active_dims": float(active), "sparsity_ratio": float(1.0 - active / dim)}


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
    """``(ids int64, weights float32)`` of each row's non-zero entries, ids ascending (any input of
    :func:`csr_arrays`, or its result): one row for a ``[dim]`` input. Raises ``ValueError`` for an input
    that is not 1-D / 2-D."""
    data, indices, indptr, _ = csr_arrays(embeddings)
    for lo, hi in zip(indptr[:-1].tolist(), indptr[1:].tolist()):
        yield indices[lo:hi].astype(np.int64), data[lo:hi]


def top_weights(embeddings: Any, top_k: int | None) -> list[tuple[list[int], list[float]]]:
    """Per row (one for a ``[dim]`` input; torch tensors too, the result is the same lists): ``(ids,
    weights)`` of the non-zero entries, largest weight first (ties: lower id first), at most ``top_k``."""
    out = []
    for ids, weights in rows(embeddings):
        order = np.argsort(-weights, kind="stable")[:top_k]
        out.append((ids[order].tolist(), weights[order].astype(np.float64).tolist()))
    return out


__all__ = ["is_torch", "is_vector", "CsrArrays", "csr_arrays", "encoder_output", "as_csr", "sparsity", "intersection",
           "rows", "top_weights", "dot_score", "cos_sim", "euclidean_sim", "manhattan_sim", "pairwise_dot_score",
           "pairwise_cos_sim", "pairwise_euclidean_sim", "pairwise_manhattan_sim", "ALL_PAIRS", "PAIRWISE"]
