"""Helpers for sparse embeddings as torch tensors (sparse COO or dense, ``[dim]`` or ``[n, dim]``) whose
results are torch tensors, as sentence-transformers 6.2 returns them: the similarity functions on sparse
inputs (``sentencekit.similarity`` dispatches here when an input is sparse) and :func:`intersection`
(``SparseEncoder.intersection``). What returns plain Python / NumPy values for any input (``sparsity``,
``decode``'s :func:`~sentencekit.sparse_arrays.top_weights`) and the conversion of any sparse output to CSR
live in :mod:`sentencekit.sparse_arrays`. Importing this module imports torch.

>>> import torch
>>> a = torch.tensor([[0.0, 2.0, 0.0, 1.0]]).to_sparse()
>>> dot_score(a, torch.tensor([[1.0, 1.0, 1.0, 1.0]]))
tensor([[3.]])
>>> intersection(a[0], torch.tensor([1.0, 1.0, 1.0, 0.0])).to_dense()
tensor([0., 2., 0., 0.])
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor


def is_sparse(x: Any) -> bool:
    """Whether ``x`` is a sparse torch tensor (COO or compressed)."""
    return isinstance(x, Tensor) and x.layout != torch.strided


def as_tensor(x: Any) -> Tensor:
    """A tensor of ``x`` (tensor, list of 1-D tensors, NumPy array, SciPy sparse matrix, nested list);
    sparse COO stays sparse (coalesced); half precision and integers become float32."""
    if isinstance(x, Tensor):
        t = x
    elif isinstance(x, (list, tuple)) and x and isinstance(x[0], Tensor):
        t = torch.stack(list(x))
    elif hasattr(x, "tocoo"):  # scipy.sparse
        coo = x.tocoo()
        indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        t = torch.sparse_coo_tensor(indices, torch.from_numpy(coo.data.astype(np.float32)), coo.shape,
                                    check_invariants=True)
    else:
        t = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if t.layout not in (torch.strided, torch.sparse_coo):
        t = t.to_sparse_coo()
    if t.dtype in (torch.float16, torch.bfloat16) or not t.is_floating_point():
        t = t.float()
    return t.coalesce() if t.is_sparse else t


def from_csr_arrays(arrays: Any, *, sparse: bool = True) -> Tensor:
    """A ``[n, dim]`` float32 CPU tensor of :class:`sentencekit.sparse_arrays.CsrArrays` (e.g. rows a pool
    worker sent back): sparse COO (coalesced) or, with ``sparse=False``, dense."""
    data, indices, indptr, shape = arrays
    row_ids = np.repeat(np.arange(shape[0], dtype=np.int64), np.diff(indptr))
    coordinates = torch.from_numpy(np.vstack([row_ids, indices.astype(np.int64)]))
    coo = _coo(coordinates, torch.from_numpy(np.asarray(data, dtype=np.float32)), tuple(shape))
    return coo if sparse else coo.to_dense()


def _coo(indices: Tensor, values: Tensor, shape: Any) -> Tensor:
    """A coalesced sparse COO tensor from the (already valid, sorted) indices of another one."""
    return torch.sparse_coo_tensor(indices, values, shape, is_coalesced=True, check_invariants=False)


def _rows(x: Any) -> Tensor:
    t = as_tensor(x)
    if t.dim() == 1:
        t = t.unsqueeze(0)
        t = t.coalesce() if t.is_sparse else t
    if t.dim() != 2:
        raise ValueError(f"Expected embeddings of shape [n, dim] (or [dim]), got shape {tuple(t.shape)}")
    return t


def _pair(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """Both as 2-D sparse COO tensors (a dense side is made sparse, as sentence-transformers does)."""
    a, b = _rows(a), _rows(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"Cannot compare embeddings of dimension {a.shape[1]} with embeddings of dimension "
                         f"{b.shape[1]}: were they made by different models?")
    a = a if a.is_sparse else a.to_sparse().coalesce()
    b = b if b.is_sparse else b.to_sparse().coalesce()
    if a.dtype != b.dtype:
        a, b = a.double(), b.double()
    return a, b.to(a.device)


def _row_sums(t: Tensor) -> Tensor:
    """Sum of each row of a 2-D sparse tensor, dense ``[n]`` (empty rows: 0)."""
    out = torch.zeros(t.shape[0], dtype=t.dtype, device=t.device)
    t = t.coalesce()
    return out.index_add(0, t.indices()[0], t.values())


def _unit_rows(t: Tensor) -> Tensor:
    t = t.coalesce()
    norms = _row_sums(t * t).sqrt().clamp(min=1e-12)
    values = t.values() / norms[t.indices()[0]]
    return _coo(t.indices(), values, t.shape)


def _mm(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b.T`` of two 2-D sparse COO tensors, dense (torch routes it through its beta CSR kernels and
    says so on every call; the result is exact, so that warning is muted here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse.mm(a, b.t().coalesce()).to_dense()


def dot_score(a: Any, b: Any) -> Tensor:
    """All-pairs dot product of sparse (or mixed) inputs: dense ``[n, m]``."""
    a, b = _pair(a, b)
    return _mm(a, b)


def cos_sim(a: Any, b: Any) -> Tensor:
    a, b = _pair(a, b)
    return _mm(_unit_rows(a), _unit_rows(b))


def euclidean_sim(a: Any, b: Any) -> Tensor:
    a, b = _pair(a, b)
    squared = _row_sums(a * a)[:, None] + _row_sums(b * b)[None, :] - 2 * _mm(a, b)
    return -squared.clamp(min=0).sqrt()


def manhattan_sim(a: Any, b: Any) -> Tensor:
    a, b = _pair(a, b)
    return -torch.cdist(a.to_dense(), b.to_dense(), p=1.0)


def _same_rows(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    a, b = _pair(a, b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"Pairwise similarity needs as many rows in a ({a.shape[0]}) as in b ({b.shape[0]}).")
    return a, b


def pairwise_dot_score(a: Any, b: Any) -> Tensor:
    a, b = _same_rows(a, b)
    return _row_sums(a * b)


def pairwise_cos_sim(a: Any, b: Any) -> Tensor:
    a, b = _same_rows(a, b)
    return _row_sums(_unit_rows(a) * _unit_rows(b))


def pairwise_euclidean_sim(a: Any, b: Any) -> Tensor:
    a, b = _same_rows(a, b)
    diff = (a - b).coalesce()
    return -_row_sums(diff * diff).sqrt()


def pairwise_manhattan_sim(a: Any, b: Any) -> Tensor:
    a, b = _same_rows(a, b)
    diff = (a - b).coalesce()
    return -_row_sums(_coo(diff.indices(), diff.values().abs(), diff.shape))


def intersection(embeddings_1: Any, embeddings_2: Any) -> Tensor:
    """The element-wise product of one embedding ``[dim]`` with one ``[dim]`` or each row of ``[n, dim]``,
    as a sparse COO tensor of ``embeddings_2``'s shape keeping only the entries > 0 (the terms both share,
    weighted by their contribution to the dot product; sentence-transformers' docstring says "minimum",
    but it returns products, and so does this). Raises ``ValueError`` when ``embeddings_1`` is not 1-D or
    the dimensions differ."""
    e1, e2 = as_tensor(embeddings_1), as_tensor(embeddings_2)
    if e1.dim() != 1:
        raise ValueError(f"intersection() needs a 1-D embeddings_1, got shape {tuple(e1.shape)}")
    if e2.dim() not in (1, 2) or e2.shape[-1] != e1.shape[0]:
        raise ValueError(f"intersection(): embeddings_2 of shape {tuple(e2.shape)} does not fit embeddings_1 of "
                         f"dimension {e1.shape[0]}")
    d1 = e1.to_dense() if e1.is_sparse else e1
    d2 = e2.to_dense() if e2.is_sparse else e2
    product = (d1 * d2.to(d1.device)).to_sparse().coalesce()
    keep = product.values() > 0
    return _coo(product.indices()[:, keep], product.values()[keep], product.shape)


__all__ = ["is_sparse", "as_tensor", "from_csr_arrays", "intersection", "dot_score", "cos_sim",
           "euclidean_sim", "manhattan_sim", "pairwise_dot_score", "pairwise_cos_sim", "pairwise_euclidean_sim",
           "pairwise_manhattan_sim"]
