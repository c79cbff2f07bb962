"""Late-interaction (ColBERT MaxSim) scores in NumPy, without torch: the twin of
:mod:`sentencekit.late_interaction_tensors` for the torch-free backend and for indexes.

``S(q, d) = sum over real query tokens i of max over real document tokens j of q_i . d_j`` (Khattab &
Zaharia, "ColBERT: Efficient and Effective Passage Search via Contextualized Late Interaction over BERT",
SIGIR 2020). Conventions as sentence-transformers 6.2's ``util.maxsim``: a masked document token never wins
the max (it is left out, not multiplied by 0), a masked query token adds 0 (a float query mask weights each
token's maximum), a document without any real token scores ``-1e9`` (logged once), and MeanMaxSim divides by
the number of real query tokens (``length_normalize=True``; rankings within a query are unchanged).

Inputs, for either side: a list of ``[n_i, dim]`` arrays (ragged; torch tensors on the CPU are read through
``np.asarray``), a padded ``[batch, tokens, dim]`` array (its padding is the all-zero rows unless a mask is
given), or one ``[tokens, dim]`` array (a batch of one). Integer (quantized) and float16 inputs are scored in
float32; results are float32.

Ragged inputs are never padded: the document tokens of a chunk are concatenated, scored against the
concatenated query tokens with one matrix product, and reduced per document with ``np.maximum.reduceat``;
``chunk_elements`` (default 1e8) bounds that similarity block.

>>> q = [np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)]
>>> d = [np.array([[1.0, 0.0]], dtype=np.float32), np.array([[0.6, 0.8], [0.0, 1.0]], dtype=np.float32)]
>>> maxsim(q, d).tolist()
[[1.0, 1.600000023841858]]
>>> mean_maxsim(q, d).tolist()
[[0.5, 0.800000011920929]]
>>> maxsim_pairwise(q + q, d).tolist()
[1.0, 1.600000023841858]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: similarity elements one chunk may hold when the caller gives no ``chunk_elements`` (about 400 MB float32)
DEFAULT_CHUNK_ELEMENTS = 100_000_000
#: the score of a document without any real token: below every real score, and finite
EMPTY_DOCUMENT_SCORE = -1e9
_warned_empty = False


def _as_float(array: Any) -> np.ndarray:
    out = np.asarray(array)
    if out.dtype not in (np.float32, np.float64):
        out = out.astype(np.float32)
    return out


def _rows(embeddings: Any, mask: Any, name: str) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """One side as a list of ``[n_i, dim]`` float arrays and a list of per-row 1-D masks (``None``: every
    token is real). Raises ``ValueError`` for an input that is not a list, a 2-D or a 3-D array, or a mask
    whose width does not fit."""
    if isinstance(embeddings, (list, tuple)):
        rows = [_as_float(e) for e in embeddings]
        if any(r.ndim != 2 for r in rows):
            shapes = sorted({r.shape for r in rows if r.ndim != 2})
            raise ValueError(f"Each multi-vector embedding must be [tokens, dim]; got shapes {shapes}.")
        masks = _row_masks(mask, [len(r) for r in rows], name, padded=False)
        return rows, masks
    array = _as_float(embeddings)
    if array.ndim == 2:
        array = array[None]
        if mask is not None and np.asarray(mask).ndim == 1:
            mask = np.asarray(mask)[None]
    if array.ndim != 3:
        raise ValueError(f"Multi-vector embeddings must be a list of [tokens, dim] arrays, a padded "
                         f"[batch, tokens, dim] array or one [tokens, dim] array; got shape {array.shape}.")
    if mask is None:
        return list(array), [row.any(axis=-1).astype(np.float32) for row in array]  # all-zero rows: padding
    return list(array), _row_masks(mask, [array.shape[1]] * len(array), name, padded=True)


def _row_masks(mask: Any, widths: list[int], name: str, *, padded: bool) -> list[np.ndarray | None]:
    if mask is None:
        return [None] * len(widths)
    if isinstance(mask, (list, tuple)):
        rows = [np.asarray(m, dtype=np.float32).reshape(-1) for m in mask]
    else:
        array = np.asarray(mask, dtype=np.float32)
        if array.ndim == 1:
            array = array[None]
        rows = list(array)
    if len(rows) != len(widths):
        raise ValueError(f"`{name}` has {len(rows)} rows for {len(widths)} embeddings.")
    out = []
    for i, (row, width) in enumerate(zip(rows, widths)):
        if len(row) < width or (padded and len(row) != width):
            raise ValueError(f"`{name}` row {i} covers {len(row)} tokens, but the embeddings have {width}.")
        out.append(row[:width])  # a padded mask of a ragged list: the positions past a row's end are padding
    return out


def _real_tokens(rows: list[np.ndarray], masks: list[np.ndarray | None]) -> list[np.ndarray]:
    return [r if m is None else r[m != 0] for r, m in zip(rows, masks)]


def _query_weights(rows: list[np.ndarray], masks: list[np.ndarray | None]) -> list[np.ndarray]:
    """Each query token's weight in the sum: its mask value (1 when unmasked)."""
    return [np.ones(len(r), dtype=np.float32) if m is None else m.astype(np.float32) for r, m in zip(rows, masks)]


def _token_counts(weights: list[np.ndarray]) -> np.ndarray:
    return np.array([max(int(np.count_nonzero(w)), 1) for w in weights], dtype=np.float32)


def _warn_empty(count: int) -> None:
    global _warned_empty
    if count and not _warned_empty:
        _warned_empty = True
        logger.warning("%d document(s) have no scoreable token (every token masked, e.g. by MultiVectorMask's "
                       "skiplist or keep_only_token_ids, or an empty embedding): they score %.0e, below every "
                       "real document.", count, EMPTY_DOCUMENT_SCORE)


def _chunks(widths: Sequence[int], cost_per_token: int, budget: int) -> list[tuple[int, int]]:
    """Consecutive ``(start, end)`` ranges whose summed widths times ``cost_per_token`` stay within
    ``budget`` (at least one item per range)."""
    ranges, start, total = [], 0, 0
    for i, width in enumerate(widths):
        if i > start and (total + width) * cost_per_token > budget:
            ranges.append((start, i))
            start, total = i, 0
        total += width
    ranges.append((start, len(widths)))
    return ranges


def maxsim(a: Any, b: Any, a_mask: Any = None, b_mask: Any = None, chunk_elements: int | None = None,
           length_normalize: bool = False) -> np.ndarray:
    """MaxSim of every query in ``a`` with every document in ``b``: ``[len(a), len(b)]`` float32 (see the
    module docstring for the input forms and masks). ``length_normalize=True`` gives MeanMaxSim. Empty
    sides give an empty ``[n, m]`` array. Raises ``ValueError`` for malformed inputs or masks."""
    queries, q_masks = _rows(a, a_mask, "a_mask")
    documents, d_masks = _rows(b, b_mask, "b_mask")
    scores = np.zeros((len(queries), len(documents)), dtype=np.float32)
    if not queries or not documents:
        return scores
    weights = _query_weights(queries, q_masks)
    docs = _real_tokens(documents, d_masks)
    dtype = np.result_type(*(q.dtype for q in queries), *(d.dtype for d in docs))
    budget = int(chunk_elements or DEFAULT_CHUNK_ELEMENTS)
    lengths = np.array([len(d) for d in docs])
    filled = np.flatnonzero(lengths)
    _warn_empty(len(docs) - len(filled))
    scores[:, lengths == 0] = EMPTY_DOCUMENT_SCORE
    q_lengths = [len(q) for q in queries]
    longest_doc = int(lengths.max()) if len(lengths) else 0
    for q_start, q_end in _chunks(q_lengths, max(longest_doc, 1), budget):
        present = [i for i in range(q_start, q_end) if q_lengths[i]]  # a query without tokens scores 0
        if not present or not len(filled):
            continue
        q_flat = np.concatenate([queries[i] for i in present]).astype(dtype, copy=False)
        q_weight = np.concatenate([weights[i] for i in present])
        q_starts = np.cumsum([0] + [q_lengths[i] for i in present[:-1]])
        for d_start, d_end in _chunks(lengths[filled].tolist(), len(q_flat), budget):
            ids = filled[d_start:d_end]
            d_flat = np.concatenate([docs[j] for j in ids]).astype(dtype, copy=False)
            d_starts = np.cumsum(np.concatenate([[0], lengths[ids[:-1]]]))
            best = np.maximum.reduceat(q_flat @ d_flat.T, d_starts, axis=1).astype(np.float32)  # [q tokens, docs]
            summed = np.add.reduceat(best * q_weight[:, None], q_starts, axis=0)  # [queries, docs]
            scores[np.ix_(present, ids)] = summed
    if length_normalize:  # the empty documents' -1e9 too, as sentence-transformers divides every score
        scores /= _token_counts(weights)[:, None]
    return scores


def maxsim_pairwise(a: Any, b: Any, a_mask: Any = None, b_mask: Any = None, chunk_elements: int | None = None,
                    length_normalize: bool = False) -> np.ndarray:
    """MaxSim of ``a[i]`` with ``b[i]`` for each ``i``: ``[n]`` float32 (``length_normalize``: MeanMaxSim).
    ``chunk_elements`` is accepted for the torch twin's signature (each pair is scored on its own).
    Raises ``ValueError`` when the sides differ in length."""
    del chunk_elements
    queries, q_masks = _rows(a, a_mask, "a_mask")
    documents, d_masks = _rows(b, b_mask, "b_mask")
    if len(queries) != len(documents):
        raise ValueError(f"`a` and `b` must hold the same number of items to score as pairs, got {len(queries)} "
                         f"and {len(documents)}.")
    weights = _query_weights(queries, q_masks)
    docs = _real_tokens(documents, d_masks)
    scores = np.zeros(len(queries), dtype=np.float32)
    empty = 0
    for i, (q, w, d) in enumerate(zip(queries, weights, docs)):
        if not len(d):
            scores[i] = EMPTY_DOCUMENT_SCORE
            empty += 1
        elif len(q):
            dtype = np.result_type(q.dtype, d.dtype)
            best = (q.astype(dtype, copy=False) @ d.astype(dtype, copy=False).T).max(axis=1).astype(np.float32)
            scores[i] = (best * w).sum(dtype=np.float32)
    _warn_empty(empty)
    return scores / _token_counts(weights) if length_normalize else scores


def mean_maxsim(a: Any, b: Any, a_mask: Any = None, b_mask: Any = None, chunk_elements: int | None = None,
                length_normalize: bool = True) -> np.ndarray:
    """:func:`maxsim` divided by each query's number of real tokens (``length_normalize=False``: plain MaxSim)."""
    return maxsim(a, b, a_mask, b_mask, chunk_elements=chunk_elements, length_normalize=length_normalize)


def mean_maxsim_pairwise(a: Any, b: Any, a_mask: Any = None, b_mask: Any = None, chunk_elements: int | None = None,
                         length_normalize: bool = True) -> np.ndarray:
    """:func:`maxsim_pairwise` divided by each query's number of real tokens."""
    return maxsim_pairwise(a, b, a_mask, b_mask, chunk_elements=chunk_elements, length_normalize=length_normalize)


#: similarity name -> (all pairs, pairwise), as ``MultiVectorEncoder.similarity_fn_name`` names them
SIMILARITIES = {"maxsim": (maxsim, maxsim_pairwise), "meanmaxsim": (mean_maxsim, mean_maxsim_pairwise)}

__all__ = ["maxsim", "maxsim_pairwise", "mean_maxsim", "mean_maxsim_pairwise", "SIMILARITIES",
           "EMPTY_DOCUMENT_SCORE", "DEFAULT_CHUNK_ELEMENTS"]
