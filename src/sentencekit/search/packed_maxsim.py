"""MaxSim over *packed* token matrices, as a stored late-interaction index keeps them: all tokens stacked
``[total_tokens, dim]`` plus ``offsets`` ``[n + 1]`` (int64, text ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``).
Documents are scored in chunks of tokens, so memory stays ``O(query tokens x chunk)`` whatever the corpus
size; float16 (or memory-mapped) documents are converted to float32 one chunk at a time. A text with no tokens
scores 0 here (the index never stores an empty document's score above a real one: see
:mod:`sentencekit.search.late_interaction_side`). The user-facing MaxSim with sentence-transformers' masks and
conventions is :mod:`sentencekit.late_interaction`.

MaxSim: Khattab and Zaharia, "ColBERT", SIGIR 2020; centroid interaction: Santhanam et al., "PLAID", 2022.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CHUNK_ELEMENTS = 1 << 23  # query tokens x document tokens scored at once: 32 MiB of float32


def pack(matrices: Sequence[np.ndarray], dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stack ``[n_tokens_i, dim]`` matrices into ``(tokens [total, dim] float32, offsets [n + 1] int64)``.
    ``dim`` is needed only when every matrix may be empty or the list is. Raises ``ValueError`` for a matrix
    that is not 2-D or has another width.

    >>> tokens, offsets = pack([np.ones((2, 3)), np.zeros((0, 3))])
    >>> tokens.shape, offsets.tolist()
    ((2, 3), [0, 2, 2])
    """
    arrays = [np.asarray(m) for m in matrices]
    for i, m in enumerate(arrays):
        if m.ndim != 2:
            raise ValueError(f"Token matrix {i} has shape {m.shape}; late interaction needs one [n_tokens, dim] "
                             "matrix per text (a model returning one vector per text is not multi-vector).")
    widths = {m.shape[1] for m in arrays} | ({dim} if dim is not None else set())
    if len(widths) > 1:
        raise ValueError(f"Token matrices of different widths {sorted(widths)}: they come from different models.")
    width = widths.pop() if widths else 0
    offsets = np.zeros(len(arrays) + 1, np.int64)
    offsets[1:] = np.cumsum([len(m) for m in arrays])
    tokens = np.concatenate(arrays).astype(np.float32, copy=False) if arrays else np.zeros((0, width), np.float32)
    return tokens.reshape(-1, width), offsets


def reduce_maxsim(similarities: np.ndarray, q_offsets: np.ndarray, d_offsets: np.ndarray, *,
                  doc_major: bool = False) -> np.ndarray:
    """MaxSim scores ``[nq, nd]`` float32 from the token similarities ``[q_tokens, d_tokens]`` (``doc_major``:
    ``[d_tokens, q_tokens]``) of packed queries and documents (``q_offsets`` ``[nq + 1]``, ``d_offsets``
    ``[nd + 1]``, both starting at 0): the max over each document's tokens, summed over each query's tokens.
    Any similarity works (exact dot products, or centroid scores as in PLAID's centroid interaction, where
    gathering rows of ``[centroids, q_tokens]`` by code is faster, hence the document-major layout).

    >>> reduce_maxsim(np.array([[1.0, 3.0, 2.0]]), np.array([0, 1]), np.array([0, 2, 2, 3])).tolist()
    [[3.0, 0.0, 2.0]]
    >>> reduce_maxsim(np.array([[1.0], [3.0], [2.0]]), np.array([0, 1]), np.array([0, 2, 3]), doc_major=True).tolist()
    [[3.0, 2.0]]
    """
    nq, nd = len(q_offsets) - 1, len(d_offsets) - 1
    out = np.zeros((nq, nd), np.float32)
    docs = np.flatnonzero(np.diff(d_offsets) > 0)  # reduceat cannot take an empty range: they keep 0
    queries = np.flatnonzero(np.diff(q_offsets) > 0)
    if len(docs) and len(queries):
        if doc_major:
            best = np.maximum.reduceat(similarities, d_offsets[docs], axis=0)  # [docs, q_tokens]
            out[np.ix_(queries, docs)] = np.add.reduceat(best, q_offsets[queries], axis=1).T
        else:
            best = np.maximum.reduceat(similarities, d_offsets[docs], axis=1)  # [q_tokens, docs]
            out[np.ix_(queries, docs)] = np.add.reduceat(best, q_offsets[queries], axis=0)
    return out


def maxsim_packed(q_tokens: np.ndarray, q_offsets: np.ndarray, d_tokens: np.ndarray, d_offsets: np.ndarray,
                  chunk_elements: int = CHUNK_ELEMENTS) -> np.ndarray:
    """MaxSim ``[nq, nd]`` float32 of packed queries against packed documents. ``d_tokens`` may be float16 or
    memory-mapped (read and converted one chunk of documents at a time); ``d_offsets`` may start past 0 (a
    slice of a larger packed array). A chunk holds whole documents, about ``chunk_elements / q_tokens``
    tokens (one longer document is a chunk of its own).

    >>> maxsim_packed(np.eye(2, dtype=np.float32), np.array([0, 1, 2]), np.eye(2, dtype=np.float16),
    ...               np.array([0, 2])).tolist()
    [[1.0], [1.0]]
    """
    q_tokens = np.asarray(q_tokens, np.float32)
    d_offsets = np.asarray(d_offsets, np.int64)
    nd = len(d_offsets) - 1
    out = np.zeros((len(q_offsets) - 1, nd), np.float32)
    step = max(1, chunk_elements // max(1, len(q_tokens)))
    a = 0
    while a < nd:
        # the documents whose tokens end within `step` tokens of this chunk's start (at least one)
        b = max(a + 1, int(np.searchsorted(d_offsets, d_offsets[a] + step, side="right")) - 1)
        b = min(b, nd)
        start, end = int(d_offsets[a]), int(d_offsets[b])
        block = np.asarray(d_tokens[start:end], dtype=np.float32)
        out[:, a:b] = reduce_maxsim(q_tokens @ block.T, q_offsets, d_offsets[a:b + 1] - start)
        a = b
    return out


__all__ = ["maxsim_packed", "reduce_maxsim", "pack", "CHUNK_ELEMENTS"]
