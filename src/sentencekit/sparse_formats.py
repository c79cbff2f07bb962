"""The formats sparse embeddings (what ``SparseEncoder.encode`` returns) leave sentencekit in: per row
``(indices, values)`` (:func:`row_entries`), TEI's ``/embed_sparse`` JSON (``[{"index", "value"}, ...]`` per
text, :func:`as_tei`) and the files ``sentencekit encode --sparse`` writes (:func:`write_sparse`).

Engine-neutral: the input may be any form :func:`sentencekit.sparse_arrays.encoder_output` reads (a torch
tensor, sparse COO or dense, ``[n, dim]`` or ``[dim]``; a list of 1-D rows; a SciPy sparse matrix, a
torch-free engine's output; a NumPy array); torch and SciPy are imported only when the input is theirs (or
an ``.npz`` file is written).

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


def row_entries(output: Any, n: int | None = None) -> Entries:
    """Each row's non-zero ``(indices int64 ascending, values float32)`` of sparse embeddings ``output``
    (:func:`sentencekit.sparse_arrays.encoder_output`: a 1-D input is one row; an empty result, e.g.
    ``encode([])``'s shape-``(0,)`` tensor, is no rows; ``n``: the number of rows expected, ``ValueError``
    otherwise; a non-finite weight raises ``ValueError``)."""
    from sentencekit.sparse_arrays import encoder_output, rows

    return list(rows(encoder_output(output, n)))


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
        lines = [json.dumps(row, separators=(",", ":")) for row in as_tei(entries)]
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
