"""The learned-sparse side of an :class:`~sentencekit.search.index.EmbeddingIndex`: exact top-k by dot
product over sparse vectors (SPLADE-style, one weight per vocabulary term), stored with the index.

A sparse encoder (``encode_document`` / ``encode_query`` returning ``[n, vocab]`` sparse vectors, as torch
sparse COO tensors, dense arrays or SciPy matrices) is read through one seam, :func:`sparse_rows`, which
turns any of those into a SciPy CSR matrix. :class:`SparseIndex` searches such rows exactly: it keeps the
transposed matrix (term -> documents and weights: posting lists) and, per query, gathers the posting
lists of the query's active terms and adds them up (one ``bincount``) into one score per row.

``benchmarks/sparse_search.py``: 100k documents of 100 active terms out of 30,522, 64 queries of 20 terms,
Zipf-like term popularity, top 10, a 2-core CPU shared with other jobs; ms per query, batch 64 / 1:

==============================  ========================  ========================
method (all exact)              skew 0.8 (74% of docs     skew 0.6 (24% of docs
                                share a query term)       share a query term)
==============================  ========================  ========================
scipy ``queries @ docs.T``      3.9 / 101                 2.8 / 114
scipy ``queries @ postings``    2.3 / 1.6                 1.0 / 0.7
``SparseIndex`` (this module)   1.6 / 1.0                 1.0 / 0.6
==============================  ========================  ========================

``queries @ docs.T`` transposes the documents on every call; SciPy's sparse x sparse product with prebuilt
posting lists builds a sparse result, where NumPy fills one dense score array per query (400 KB at 100k
rows; peak 6 MiB for the batch). Memory: the posting lists take 8 bytes per stored weight (76 MiB here,
built in ~0.1 s when the part is first searched); the stored CSR parts stay memory-mapped. Through
``EmbeddingIndex.search(retrieval="sparse")``: 1.5 ms per query in one segment, 1.9 ms in 20 (each segment
is a part searched in turn, so new segments are loaded alone; ``compact`` merges them).

Storage (never pickle; ``.npy`` files loaded with ``allow_pickle=False``): every segment of the index gets a
*part*, its rows' sparse vectors in CSR form, written once, in the same commit as the segment::

    segments/spr-000004-1a2b3c4d.spdata.npy      float32 weight of each active (row, term)
    segments/spr-000004-1a2b3c4d.spindices.npy   int32 term of each entry, ascending within a row
    segments/spr-000004-1a2b3c4d.spindptr.npy    int64 [rows + 1] start of each row's entries

The manifest's ``"sparse"`` entry (JSON, beside ``"lexical"``) names the sparse model (fingerprint), the
vocabulary size and one record per part (``segment``, ``rows``, ``nnz``, file names), with the sizes and
SHA-256 of all part files in ``"checks"``. Parts follow the segments through add / delete / compact as
every per-segment side's do (:mod:`sentencekit.search.segment_sides`, which :class:`SparseKind` plugs into).

>>> import scipy.sparse as sp
>>> docs = sp.csr_matrix(np.array([[0, 2, 0, 1], [1, 0, 0, 0], [0, 1, 3, 0]], dtype=np.float32))
>>> SparseIndex(docs).top(sp.csr_matrix(np.array([[0, 1, 1, 0]], dtype=np.float32)), k=5)
[[(2, 4.0), (0, 2.0)]]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sentencekit.search.index_errors import IndexMismatchError
from sentencekit.search.segment_sides import PartKind, empty_entry
from sentencekit.search.storage import SEGMENTS, check_size, damaged, load_npy, save_npy
from sentencekit.sparse_arrays import as_csr, encoder_output

ROLES = {"data": "spdata.npy", "indices": "spindices.npy", "indptr": "spindptr.npy"}
INSTALL_HINT = "pip install 'sentencekit[sparse]' (scipy)"
DENSE_FRACTION = 0.5  # a "sparse" vector with more non-zero entries than this is a dense embedding


def import_scipy_sparse() -> Any:
    """``scipy.sparse``, or ``ImportError`` saying what to install.

    >>> import_scipy_sparse().__name__
    'scipy.sparse'
    """
    try:
        import scipy.sparse
    except ImportError as exc:
        raise ImportError(f"The sparse side of the index needs scipy ({exc.name} is missing): {INSTALL_HINT}.") from exc
    return scipy.sparse


# -- the one seam to sparse encoders -------------------------------------------------------------------
def sparse_rows(model: Any, texts: Sequence[str], *, query: bool) -> Any:
    """Encode ``texts`` with a sparse encoder: ``model.encode_query(texts)`` if ``query`` else
    ``model.encode_document(texts)`` (called with the list of texts only, so the model's own defaults
    apply), converted by :func:`to_csr`. Returns a ``scipy.sparse.csr_matrix`` ``[len(texts), vocab]``
    float32 with sorted, unique terms per row and no stored zeros. Raises ``TypeError`` when the model lacks
    the method, ``ValueError`` when it returns another number of rows or non-finite weights.

    >>> sparse_rows(splade, ["refund policy"], query=False).shape  # doctest: +SKIP
    (1, 30522)
    """
    name = "encode_query" if query else "encode_document"
    method = getattr(model, name, None)
    if not callable(method):
        raise TypeError(f"A sparse model needs {name}(texts) -> [n, vocab] sparse vectors; {type(model).__name__} "
                        f"has no {name}.")
    texts = list(texts)
    return to_csr(method(texts), len(texts))


def to_csr(output: Any, n: int | None = None) -> Any:
    """Sparse vectors as the index keeps them, a canonical CSR float32 matrix: any form a sparse encoder
    returns (:func:`sentencekit.sparse_arrays.encoder_output`, the one conversion: ``n`` rows expected,
    non-finite weights refused, both ``ValueError``), with this module's ``ImportError`` when SciPy is
    missing.

    >>> to_csr(np.array([[0.0, 2.0, 0.0]])).toarray().tolist()
    [[0.0, 2.0, 0.0]]
    >>> to_csr([np.array([1.0, 0.0]), np.array([0.0, 3.0])]).indices.tolist()
    [0, 1]
    """
    import_scipy_sparse()
    return as_csr(encoder_output(output, n))


# -- what the index records about the sparse model -------------------------------------------------------
def check_sparse_encoder(model: Any) -> None:
    """Refuse an object that cannot encode documents and queries as sparse vectors.

    >>> check_sparse_encoder(object())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: sparse_model must be a sparse encoder with encode_document(texts) and ...; got object.
    """
    if not all(callable(getattr(model, m, None)) for m in ("encode_document", "encode_query")):
        raise TypeError("sparse_model must be a sparse encoder with encode_document(texts) and encode_query(texts) "
                        f"(e.g. SPLADE); got {type(model).__name__}.")


def encode(model: Any, entry: dict[str, Any], texts: Sequence[str], *, query: bool) -> Any:
    """:func:`sparse_rows`, refusing vectors over another vocabulary than the index's (``IndexMismatchError``).

    >>> encode(splade, index.manifest["sparse"], ["refund?"], query=True).shape  # doctest: +SKIP
    (1, 30522)
    """
    rows = sparse_rows(model, texts, query=query)
    if rows.shape[1] != entry["vocab"] and rows.shape[0]:
        raise IndexMismatchError(f"The sparse model produced vectors over {rows.shape[1]} terms, but the index stores "
                                 f"vectors over {entry['vocab']}: was the model changed after the index was opened? "
                                 "Reopen it with the sparse model it was built with.")
    return rows.tocsr() if rows.shape[0] else import_scipy_sparse().csr_matrix((0, entry["vocab"]), dtype=np.float32)


# -- exact search ----------------------------------------------------------------------------------
class SparseIndex:
    """Exact top-k by dot product over document sparse vectors ``docs`` (``[n_rows, vocab]`` CSR float32).

    Keeps ``docs`` (for :meth:`rows`) and its transpose, the posting lists (term -> rows, weights; 8 bytes
    per stored weight); a query's scores are the sum of its active terms' posting lists, each scaled by the
    query weight: work in proportion to the postings read, not to the collection.

    >>> import scipy.sparse as sp
    >>> index = SparseIndex(sp.csr_matrix(np.array([[1, 1], [1, 1], [0, 2]], dtype=np.float32)))
    >>> index.top(sp.csr_matrix(np.array([[1, 0], [0, 0]], dtype=np.float32)), k=3)  # ties: row order; [] if no term
    [[(0, 1.0), (1, 1.0)], []]
    """

    def __init__(self, docs: Any, *, canonical: bool = False) -> None:
        """``canonical``: ``docs`` is already a CSR float32 matrix with sorted, unique terms per row (e.g.
        memory-mapped stored rows, which :func:`to_csr` would copy), used as it is."""
        self.docs = docs if canonical else to_csr(docs)
        self.rows, self.vocab = self.docs.shape
        postings = self.docs.T.tocsr()  # [vocab, rows]
        self._indptr, self._indices, self._data = postings.indptr, postings.indices, postings.data

    @property
    def nbytes(self) -> int:
        """Bytes of RAM the posting lists take (the documents' own CSR may stay memory-mapped)."""
        return int(self._indptr.nbytes + self._indices.nbytes + self._data.nbytes)

    def add_scores(self, terms: np.ndarray, weights: np.ndarray, out: np.ndarray) -> None:
        """Add one query's dot products to ``out`` (``[rows]`` float32): ``terms`` / ``weights`` are its
        active terms (unique, below ``vocab``) and their weights."""
        starts = self._indptr[terms]
        lengths = self._indptr[terms + 1] - starts
        total = int(lengths.sum())
        if total:
            # all the query's posting lists in one gather and one bincount (float64 sums): a handful of NumPy
            # calls per query and part instead of a few per term, which is what many small segments cost
            ends = np.cumsum(lengths)
            positions = np.arange(total) + np.repeat(starts - ends + lengths, lengths)
            values = self._data[positions] * np.repeat(weights.astype(np.float32), lengths)
            out += np.bincount(self._indices[positions], weights=values, minlength=self.rows).astype(np.float32)

    def top(self, queries: Any, k: int) -> list[list[tuple[int, float]]]:
        """Per query (``[n_queries, vocab]`` sparse rows), up to ``k`` ``(row, score)`` best first; equal
        scores come in row order. Only rows with a non-zero score (sharing an active term with the query)
        are returned: an empty query gets ``[]``."""
        return [[(row, score) for _, row, score in hits] for hits in top_rows([self], queries, k)]


def top_rows(parts: Sequence[SparseIndex], queries: Any, k: int, *, alive: np.ndarray | None = None,
             row_doc: np.ndarray | None = None) -> list[list[tuple[int, int, float]]]:
    """Exact top ``k`` over the rows of ``parts`` numbered one after another: per query, ``(doc, row,
    score)`` best first, rows of ``alive == False`` skipped; with ``row_doc`` (each row's document) at most
    one row (the best) per document and ``doc`` is its document, else ``doc == row``. Ties: row order.

    >>> import scipy.sparse as sp
    >>> part = SparseIndex(sp.csr_matrix(np.array([[2, 0], [3, 0], [1, 1]], dtype=np.float32)))
    >>> top_rows([part], sp.csr_matrix(np.array([[1, 0]], dtype=np.float32)), 2, row_doc=np.array([0, 0, 1]))
    [[(0, 1, 3.0), (1, 2, 1.0)]]
    """
    queries = to_csr(queries)
    vocab = min((p.vocab for p in parts), default=0)
    if queries.nnz and queries.shape[1] > vocab:
        queries = queries[:, :vocab]  # terms past the documents' vocabulary are in no document
    total = sum(p.rows for p in parts)
    dead = np.flatnonzero(~alive) if alive is not None else None
    out = []
    for q in range(queries.shape[0]):
        lo, hi = queries.indptr[q], queries.indptr[q + 1]
        scores = np.zeros(total, np.float32)
        start = 0
        for part in parts:
            part.add_scores(queries.indices[lo:hi], queries.data[lo:hi], scores[start:start + part.rows])
            start += part.rows
        if dead is not None and len(dead):
            scores[dead] = 0
        out.append(_best(scores, k, row_doc))
    return out


def _best(scores: np.ndarray, k: int, row_doc: np.ndarray | None) -> list[tuple[int, int, float]]:
    """The ``k`` best non-zero rows of one query's ``scores`` (one per document with ``row_doc``)."""
    rows = np.flatnonzero(scores)
    values = scores[rows]
    # first only the rows scoring at least the m-th best (ties at the boundary included, then ordered by
    # row); with several rows per document, m = 4k rows may hold fewer than k documents: then all rows
    for m in ([k] if row_doc is None else [4 * k, len(rows)]):
        top_rows, top_values = rows, values
        if len(rows) > m:
            kth = np.partition(values, len(values) - m)[len(values) - m]
            keep = values >= kth
            top_rows, top_values = rows[keep], values[keep]
        order = np.lexsort((top_rows, -top_values))
        if row_doc is not None:
            _, first = np.unique(row_doc[top_rows[order]], return_index=True)  # a document's best row is first
            order = order[np.sort(first)]
        if len(order) >= k or len(top_rows) == len(rows):
            break
    rows, values, order = top_rows, top_values, order[:k]
    docs = row_doc[rows[order]] if row_doc is not None else rows[order]
    return list(zip(docs.tolist(), rows[order].tolist(), values[order].tolist()))


# -- storage ---------------------------------------------------------------------------------------
def write_part(root: str | os.PathLike, name: str, segment: str, rows: Any) -> dict[str, Any]:
    """Write one segment's sparse rows (CSR) under ``segments/`` (each file through a temporary file and
    ``os.replace``); returns the part's record for the ``"sparse"`` entry. Nothing refers to the files
    until a manifest listing them is committed.

    >>> write_part(folder, "spr-000002-1a2b3c4d", "seg-000002-5e6f7a8b", rows)["rows"]  # doctest: +SKIP
    2
    """
    rows = to_csr(rows)
    folder = Path(root) / SEGMENTS
    roles = {role: f"{name}.{suffix}" for role, suffix in ROLES.items()}
    save_npy(folder / roles["data"], rows.data.astype(np.float32, copy=False))
    save_npy(folder / roles["indices"], rows.indices.astype(np.int32, copy=False))
    save_npy(folder / roles["indptr"], rows.indptr.astype(np.int64, copy=False))
    return {"segment": segment, "name": name, "rows": int(rows.shape[0]), "nnz": int(rows.nnz), "roles": roles}


def load_part(root: str | os.PathLike, part: dict[str, Any], vocab: int, checks: dict[str, Any]) -> SparseIndex:
    """Load a committed part, checking its files against the manifest (sizes, shapes, counts, term range):
    damage raises :class:`~sentencekit.search.index_errors.IndexFormatError` naming the file; a missing file
    raises ``FileNotFoundError`` (a concurrent compaction may have removed it: re-read the manifest).

    >>> load_part(folder, manifest["sparse"]["parts"][0], 30522, manifest["sparse"]["checks"]).rows  # doctest: +SKIP
    2
    """
    sparse = import_scipy_sparse()
    folder, roles = Path(root) / SEGMENTS, part["roles"]
    for file in roles.values():
        check_size(folder / file, checks.get(file))
    data, indices, indptr = (load_npy(folder / roles[r]) for r in ("data", "indices", "indptr"))
    if indptr.ndim != 1 or len(indptr) != part["rows"] + 1 or indptr.dtype.kind not in "iu":
        raise damaged(folder / roles["indptr"], f"holds {indptr.dtype} offsets of shape {indptr.shape}; the manifest "
                                                f"recorded {part['rows']} rows")
    if int(indptr[0]) != 0 or int(indptr[-1]) != part["nnz"] or (np.diff(indptr) < 0).any():
        raise damaged(folder / roles["indptr"], f"offsets are not a non-decreasing run from 0 to {part['nnz']}")
    for role, array, kind in (("data", data, "f"), ("indices", indices, "iu")):
        if array.ndim != 1 or len(array) != part["nnz"] or array.dtype.kind not in kind:
            raise damaged(folder / roles[role], f"holds {array.dtype} {array.shape}; the manifest recorded "
                                                f"{part['nnz']} entries")
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= vocab):
        raise damaged(folder / roles["indices"], f"refers to terms outside 0..{vocab - 1}")
    starts = np.zeros(len(indices), bool)
    starts[np.asarray(indptr[:-1])[np.diff(indptr) > 0]] = True
    if len(indices) > 1 and ((np.diff(indices.astype(np.int64)) <= 0) & ~starts[1:]).any():
        # a term twice in a row would be counted once by the posting lists: the file is not what was written
        raise damaged(folder / roles["indices"], "a row's terms are not strictly increasing")
    if not np.isfinite(data).all():
        raise damaged(folder / roles["data"], "holds NaN or infinite weights")
    return SparseIndex(sparse.csr_matrix((data, indices, indptr), shape=(part["rows"], vocab)), canonical=True)


class SparseSide:
    """The loaded sparse side of one snapshot: its parts (one :class:`SparseIndex` per segment, in log
    order, so the rows are numbered as the snapshot's vectors are)."""

    def __init__(self, parts: list[SparseIndex], vocab: int) -> None:
        self.parts, self.vocab = parts, vocab

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.parts)

    def top(self, queries: Any, k: int, snap: Any) -> list[list[tuple[int, int, float]]]:
        """Per query up to ``k`` ``(document, row, score)`` over the live documents of ``snap``, best first."""
        return top_rows(self.parts, queries, k, alive=snap.alive, row_doc=snap.row_doc if snap.has_chunks else None)

    def rows(self, rows: np.ndarray) -> Any:
        """The stored sparse vectors of global ``rows`` (CSR), e.g. to carry them into a compacted segment."""
        sparse = import_scipy_sparse()
        stacked = sparse.vstack([p.docs for p in self.parts], format="csr") if self.parts else None
        return stacked[rows] if stacked is not None else sparse.csr_matrix((0, self.vocab), dtype=np.float32)


class SparseKind(PartKind):
    """The learned-sparse side as a per-segment side (:mod:`sentencekit.search.segment_sides`): entry
    ``"sparse"`` with the vocabulary size, parts ``spr-*`` in CSR form."""

    key, prefix, label, model_arg = "sparse", "spr", "sparse", "sparse_model"
    why = "mixing two sparse models in one index would compare vectors over different vocabularies and weights"

    def require(self) -> None:
        import_scipy_sparse()

    def check_model(self, model: Any) -> None:
        check_sparse_encoder(model)

    def new_entry(self, model: Any) -> dict[str, Any]:
        """The entry of an empty sparse side; its vocabulary size is measured by encoding a probe text. A model
        whose probe vector is mostly non-zero is a dense embedding model: ``ValueError``."""
        check_sparse_encoder(model)
        probe = sparse_rows(model, ["vocabulary probe"], query=False)
        if probe.shape[1] and probe.nnz > DENSE_FRACTION * probe.shape[1]:
            raise ValueError(f"sparse_model returned a dense vector ({probe.nnz} of {probe.shape[1]} entries non-zero):"
                             " pass a sparse encoder (SPLADE-style, one weight per vocabulary term) as sparse_model, "
                             "and the dense embedding model as model.")
        return empty_entry(self, model, vocab=int(probe.shape[1]))

    def encode(self, model: Any, entry: dict[str, Any], texts: Sequence[str], *, query: bool) -> Any:
        return encode(model, entry, texts, query=query)

    def row_count(self, rows: Any) -> int:
        return int(to_csr(rows).shape[0])

    def write_part(self, root: str | os.PathLike, name: str, segment: str, rows: Any,
                   entry: dict[str, Any]) -> dict[str, Any]:
        rows = to_csr(rows)
        if rows.shape[0] and rows.shape[1] != entry["vocab"]:
            raise ValueError(f"Got sparse rows over {rows.shape[1]} terms for segment {segment}; the index stores "
                             f"{entry['vocab']}.")
        return write_part(root, name, segment, rows)

    def load_part(self, root: str | os.PathLike, part: dict[str, Any], entry: dict[str, Any]) -> SparseIndex:
        return load_part(root, part, entry["vocab"], entry.get("checks", {}))

    def side(self, parts: list[Any], entry: dict[str, Any]) -> SparseSide:
        return SparseSide(parts, entry["vocab"])


SPARSE = SparseKind()

__all__ = ["SparseIndex", "SparseSide", "SparseKind", "SPARSE", "sparse_rows", "to_csr", "top_rows", "write_part",
           "load_part", "check_sparse_encoder", "encode"]
