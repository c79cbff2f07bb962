"""Exact and quantized scoring of query vectors against stored vector blocks, in bounded memory.

A block is one committed segment: float32 vectors (always kept, for exact scores and rescoring), and,
for quantized indexes, int8 codes with a per-segment scale or packed sign bits. Blocks are scanned in
row chunks (``q @ chunk.T`` then ``argpartition``), so memory stays ``O(queries x chunk)``.

>>> import numpy as np
>>> block = Block(np.eye(3, dtype=np.float32))
>>> rows, scores = top_rows(np.eye(3, dtype=np.float32)[:1], [block], np.ones(3, bool), n=2)
>>> rows.tolist()
[[0, 1]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CHUNK_ELEMENTS = 1 << 23  # scores computed at once (queries x rows): 32 MiB of float32
INT8_CHUNK_ROWS = 1024  # int8 rows decoded to float32 at a time: a slab that stays in cache


@dataclass
class Block:
    """One segment's vectors: float32 ``[rows, dim]`` plus the optional quantized copy scanned instead.

    >>> Block(np.zeros((2, 4), np.float32)).rows
    2
    """

    vectors: np.ndarray
    codes: np.ndarray | None = None  # int8 [rows, dim] or packed bits uint8 [rows, ceil(dim/8)]
    scale: np.ndarray | None = None  # int8 only: [2, dim] = (start, step) per dimension

    @property
    def rows(self) -> int:
        return int(self.vectors.shape[0])


def quantize_int8(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension int8 codes calibrated on ``vectors`` themselves: ``x ~ start + (code + 128) * step``.

    >>> codes, scale = quantize_int8(np.array([[0.0, 1.0], [1.0, -1.0]], np.float32))
    >>> codes.tolist(), scale[0].tolist()
    ([[-128, 127], [127, -128]], [0.0, -1.0])
    """
    start, top = vectors.min(axis=0), vectors.max(axis=0)
    step = (top - start) / 255
    step = np.where(step > 0, step, 1.0).astype(np.float32)  # a constant dimension decodes to `start` exactly
    codes = np.clip(np.rint((vectors - start) / step) - 128, -128, 127).astype(np.int8)
    return codes, np.stack([start, step]).astype(np.float32)


def pack_bits(vectors: np.ndarray) -> np.ndarray:
    """Sign bits packed 8 to a byte (sentence-transformers' ``ubinary``).

    >>> pack_bits(np.array([[1.0, -1.0, 1.0, 1.0, -1.0, -1.0, -1.0, 1.0]])).tolist()
    [[177]]
    """
    return np.packbits(vectors > 0, axis=-1)


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # NumPy >= 2.0
        return np.bitwise_count(x)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
    return table[x.view(np.uint8)].reshape(*x.shape, -1).sum(axis=-1)


def _words(bits: np.ndarray) -> np.ndarray:
    """Packed bits as 64-bit words when the width allows (fewer XOR/popcount operations)."""
    bits = np.ascontiguousarray(bits)
    return bits.view(np.uint64) if bits.shape[1] % 8 == 0 else bits


def _block_scores(queries: np.ndarray, query_words: np.ndarray | None, block: Block, kind: str, a: int,
                  b: int) -> np.ndarray:
    """First-stage scores ``[nq, b - a]`` of rows ``a:b`` of ``block``: exact dot products (float32),
    dot products with dequantized codes (int8), or minus the Hamming distance of the sign bits."""
    if kind == "float32":
        return queries @ np.asarray(block.vectors[a:b]).T
    if kind == "int8":
        start, step = block.scale
        scaled, out = queries * step, np.empty((len(queries), b - a), np.float32)
        # few queries: decode cache-sized slabs (decoding dominates); many: one large, efficient product
        slab = INT8_CHUNK_ROWS if len(queries) < 16 else b - a
        buffer = np.empty((min(slab, b - a), block.codes.shape[1]), np.float32)
        for s in range(a, b, slab):
            e = min(s + slab, b)
            np.copyto(buffer[: e - s], block.codes[s:e], casting="unsafe")
            out[:, s - a : e - a] = scaled @ buffer[: e - s].T
        out += (queries @ (start + 128 * step))[:, None]  # the same for every row: added so blocks compare
        return out
    words = _words(block.codes[a:b]).T.copy()  # [words, rows]: each word's column is contiguous
    distance = np.zeros((len(queries), b - a), np.int32)
    for w in range(words.shape[0]):
        distance += _popcount(query_words[:, w, None] ^ words[w][None, :])
    return -distance.astype(np.float32)


def _keep_top(rows: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    if scores.shape[1] > n:
        part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
        rows, scores = np.take_along_axis(rows, part, 1), np.take_along_axis(scores, part, 1)
    return rows, scores


def top_rows(queries: np.ndarray, blocks: Sequence[Block], alive: np.ndarray, n: int, kind: str = "float32",
             ) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best live rows per query over all ``blocks`` (global row numbers, blocks in order),
    as ``(rows [nq, n], scores [nq, n])`` sorted best first. ``alive`` masks deleted rows; ``kind``
    picks the scanned representation (``float32``, ``int8`` or ``ubinary``).

    >>> b = Block(np.array([[1.0, 0.0], [0.6, 0.8]], np.float32))
    >>> top_rows(np.array([[0.0, 1.0]], np.float32), [b], np.array([True, True]), n=1)[0].tolist()
    [[1]]
    """
    n = int(min(n, alive.sum()))
    nq = len(queries)
    if n <= 0:
        return np.empty((nq, 0), np.int64), np.empty((nq, 0), np.float32)
    query_words = _words(pack_bits(queries)) if kind == "ubinary" else None
    chunk = max(256, CHUNK_ELEMENTS // nq)  # rows scored at once
    best_rows, best_scores = np.empty((nq, 0), np.int64), np.empty((nq, 0), np.float32)
    offset = 0
    for block in blocks:
        for a in range(0, block.rows, chunk):
            b = min(a + chunk, block.rows)
            scores = _block_scores(queries, query_words, block, kind, a, b).astype(np.float32, copy=False)
            scores[:, ~alive[offset + a : offset + b]] = -np.inf
            rows = np.broadcast_to(np.arange(offset + a, offset + b), scores.shape)
            rows, scores = _keep_top(rows, scores, n)
            best_rows, best_scores = _keep_top(np.concatenate([best_rows, rows], 1),
                                               np.concatenate([best_scores, scores], 1), n)
        offset += block.rows
    return sort_rows(best_rows, best_scores)


def sort_rows(rows: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each query's candidates by score (best first; ties by row number).

    >>> sort_rows(np.array([[3, 1]]), np.array([[0.1, 0.9]]))[0].tolist()
    [[1, 3]]
    """
    order = np.lexsort((rows, -scores), axis=1) if rows.size else np.zeros(rows.shape, np.int64)
    return np.take_along_axis(rows, order, 1), np.take_along_axis(scores, order, 1)


def gather(blocks: Sequence[Block], offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Float32 vectors of global ``rows`` (1-D), read from each block (memory-mapped files are only
    touched at those rows).

    >>> gather([Block(np.eye(2, dtype=np.float32))], np.array([0]), np.array([1])).tolist()
    [[0.0, 1.0]]
    """
    block_of = np.searchsorted(offsets, rows, side="right") - 1
    dim = blocks[0].vectors.shape[1] if blocks else 0
    out = np.empty((len(rows), dim), np.float32)
    for i in np.unique(block_of):
        mask = block_of == i
        out[mask] = blocks[i].vectors[rows[mask] - offsets[i]]
    return out


def rescore(queries: np.ndarray, blocks: Sequence[Block], offsets: np.ndarray,
            rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact float32 scores of candidate ``rows`` ``[nq, m]`` (-1 = no candidate), sorted best first.

    >>> b = [Block(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32))]
    >>> rescore(np.array([[0.0, 1.0]], np.float32), b, np.array([0]), np.array([[0, 1]]))[0].tolist()
    [[1, 0]]
    """
    valid = rows >= 0
    wanted, inverse = np.unique(rows[valid], return_inverse=True)
    exact = queries @ gather(blocks, offsets, wanted).T  # [nq, unique candidates]
    scores = np.full(rows.shape, -np.inf, np.float32)
    query_of = np.broadcast_to(np.arange(len(queries))[:, None], rows.shape)[valid]
    scores[valid] = exact[query_of, inverse.reshape(-1)]
    return sort_rows(np.where(valid, rows, -1), scores)
