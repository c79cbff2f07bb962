"""Sparse embeddings (what ``SparseEncoder.encode`` returns) as plain ``(indices, values)`` per row, and the two
formats they leave sentencekit in: TEI's ``/embed_sparse`` JSON (``[{"index", "value"}, ...]`` per text) and the
files ``sentencekit encode --sparse`` writes.

Engine-neutral: the input may be a torch tensor (sparse COO or dense, ``[n, dim]`` or ``[dim]``), a list of
1-D rows, a SciPy sparse matrix (a torch-free engine's output) or a NumPy array; torch and SciPy are imported
only when the input is theirs (or an ``.npz`` file is written).

File formats of ``sentencekit encode --sparse`` (chosen by the output's suffix; never pickles):

* ``.npz``: a SciPy CSR matrix ``[n, vocab]`` float32 written by ``scipy.sparse.save_npz``; read it back with
  ``scipy.sparse.load_npz`` (which loads with ``allow_pickle=False``), or with ``numpy.load`` (the arrays
  ``data``, ``indices``, ``indptr``, ``shape``, ``format``).
* ``.jsonl``: one line per text, in input order, TEI's shape: ``[{"index": 12, "value": 0.83}, ...]`` with the
  terms ascending (an empty list for a text with no active term).

>>> import numpy as np
>>> rows = row_entries(np.array([[0.0, 2.0, 0.0, 1.5], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32))
>>> [(i.tolist(), v.tolist()) for i, v in rows]
[([1, 3], [2.0, 1.5]), ([], [])]
>>> as_tei(rows)
[[{'index': 1, 'value': 2.0}, {'index': 3, 'value': 1.5}], []]
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

#: what ``sentencekit encode --sparse`` can write, by suffix
SPARSE_SUFFIXES = (".npz", ".jsonl")

Entries = list[tuple[np.ndarray, np.ndarray]]


def _from_dense(array: np.ndarray) -> Entries:
    array = np.atleast_2d(np.asarray(array, dtype=np.float32))
    out = []
    for row in array:
        nz = np.flatnonzero(row)
        out.append((nz.astype(np.int64), row[nz].astype(np.float32)))
    return out


def _from_torch(tensor: Any) -> Entries:
    import torch  # only reached when the model returned torch tensors

    if tensor.layout == torch.strided:
        return _from_dense(tensor.detach().float().cpu().numpy())
    coo = (tensor if tensor.layout == torch.sparse_coo else tensor.to_sparse_coo()).coalesce()
    indices, values = coo.indices().cpu().numpy(), coo.values().detach().float().cpu().numpy()
    if tensor.dim() == 1:
        keep = values != 0
        return [(indices[0][keep].astype(np.int64), values[keep].astype(np.float32))]
    rows, cols = indices[0], indices[1]  # coalesced: sorted by row, then column
    bounds = np.searchsorted(rows, np.arange(tensor.shape[0] + 1))
    out = []
    for r in range(tensor.shape[0]):
        c, v = cols[bounds[r]:bounds[r + 1]], values[bounds[r]:bounds[r + 1]]
        keep = v != 0
        out.append((c[keep].astype(np.int64), v[keep].astype(np.float32)))
    return out


def _from_scipy(matrix: Any) -> Entries:
    csr = matrix.tocsr().astype(np.float32)
    csr.sum_duplicates()  # sorts each row's terms
    out = []
    for r in range(csr.shape[0]):
        lo, hi = csr.indptr[r], csr.indptr[r + 1]
        c, v = csr.indices[lo:hi], csr.data[lo:hi]
        keep = v != 0
        out.append((c[keep].astype(np.int64), v[keep].astype(np.float32)))
    return out


def row_entries(output: Any, n: int | None = None) -> Entries:
    """Each row's non-zero ``(indices int64 ascending, values float32)`` of sparse embeddings ``output`` (see the
    module docstring for the accepted forms; a 1-D input is one row; an empty result, e.g. ``encode([])``'s
    shape-``(0,)`` tensor, is no rows). ``n``: the number of rows expected (``ValueError`` otherwise); a
    non-finite weight raises ``ValueError``."""
    if isinstance(output, (list, tuple)):
        entries = [e for row in output for e in row_entries(row)]
    elif hasattr(output, "tocsr"):  # scipy.sparse
        entries = _from_scipy(output)
    elif type(output).__module__.startswith("torch"):
        entries = [] if output.dim() == 1 and output.shape[0] == 0 else _from_torch(output)
    else:
        array = np.asarray(output, dtype=np.float32)
        entries = [] if array.ndim == 1 and array.shape[0] == 0 else _from_dense(array)
    if n is not None and len(entries) != n:
        raise ValueError(f"the sparse model returned {len(entries)} rows for {n} texts")
    if any(not np.isfinite(v).all() for _, v in entries):
        raise ValueError("the sparse model returned NaN or infinite weights")
    return entries


def as_tei(entries: Entries) -> list[list[dict[str, Any]]]:
    """TEI's ``/embed_sparse`` body: per row ``[{"index": int, "value": float}, ...]``, terms ascending."""
    return [[{"index": int(i), "value": float(v)} for i, v in zip(idx.tolist(), val.tolist())]
            for idx, val in entries]


def check_sparse_output(path: str | os.PathLike) -> str:
    """The format ``path`` asks for (``".npz"`` or ``".jsonl"``), or ``ValueError`` naming the choices.

    >>> check_sparse_output("out.npy")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: out.npy: sparse embeddings are written as .npz (a SciPy CSR matrix) or .jsonl (...
    """
    suffix = Path(path).suffix.lower()
    if suffix not in SPARSE_SUFFIXES:
        raise ValueError(f"{path}: sparse embeddings are written as .npz (a SciPy CSR matrix) or .jsonl (one line "
                         'per text: [{"index", "value"}, ...]); name the output file with one of those suffixes')
    return suffix


def write_sparse(path: str | os.PathLike, entries: Entries, vocab: int) -> None:
    """Write ``entries`` (:func:`row_entries`) over ``vocab`` terms to ``path`` in the format its suffix names
    (module docstring), atomically (a crash leaves the previous file or none). ``.npz`` needs SciPy
    (``ImportError`` saying what to install)."""
    from sentencekit.files import atomic_write_bytes

    if check_sparse_output(path) == ".jsonl":
        lines = [json.dumps([{"index": int(i), "value": float(v)} for i, v in zip(idx.tolist(), val.tolist())],
                            separators=(",", ":")) for idx, val in entries]
        atomic_write_bytes(path, ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8"))
        return
    try:
        import scipy.sparse as sp
    except ImportError as exc:
        raise ImportError(f"writing {path} (.npz) needs scipy: pip install 'sentencekit[sparse]', or write .jsonl "
                          "instead") from exc
    indptr = np.zeros(len(entries) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(idx) for idx, _ in entries], dtype=np.int64)
    indices = np.concatenate([idx for idx, _ in entries]).astype(np.int32) if entries else np.zeros(0, np.int32)
    data = np.concatenate([val for _, val in entries]).astype(np.float32) if entries else np.zeros(0, np.float32)
    matrix = sp.csr_matrix((data, indices, indptr), shape=(len(entries), int(vocab)))
    buffer = io.BytesIO()
    sp.save_npz(buffer, matrix, compressed=True)
    atomic_write_bytes(path, buffer.getvalue())


__all__ = ["SPARSE_SUFFIXES", "row_entries", "as_tei", "check_sparse_output", "write_sparse"]
