"""Candidate generation for late-interaction search, PLAID-style (Santhanam, Khattab, Potts and Zaharia,
"PLAID: An Efficient Engine for Late Interaction Retrieval", CIKM 2022; the centroids of ColBERTv2,
Santhanam et al., NAACL 2022): k-means centroids over a part's token vectors, each token assigned to its
nearest centroid, and per query

1. each query token probes its ``nprobe`` best centroids (by dot product): the documents holding a token of
   a probed centroid are the candidates (an inverted list per centroid);
2. *centroid interaction*: each candidate is scored by MaxSim with its tokens replaced by their centroids
   (``sum_i max_j q_i . c(d_j)``, read from the ``[query tokens, centroids]`` score matrix, so no token
   vector is touched);
3. the ``ndocs`` best of those are returned, for exact MaxSim re-scoring by the caller.

Unlike PLAID, tokens are not residual-compressed here (the caller keeps them as float16), so the centroids
only steer the search and can be far fewer (:func:`centroid_count`), which keeps building cheap on a CPU.

>>> rng = np.random.default_rng(0)
>>> tokens = rng.standard_normal((200, 8)).astype(np.float32)
>>> centroids = kmeans(tokens, 4)
>>> codes = assign(tokens, centroids)
>>> centroids.shape, codes.shape, int(codes.max()) < 4
((4, 8), (200,), True)
"""

from __future__ import annotations

import numpy as np

from sentencekit.late_interaction import CHUNK_ELEMENTS, reduce_maxsim

CENTROIDS_PER_SQRT_TOKEN = 2  # k = largest power of two <= 2 sqrt(tokens): 4096 for 100k documents of 45 tokens
SAMPLE_PER_CENTROID = 32  # k-means trains on at most this many tokens per centroid (a seeded sample)
KMEANS_ITERATIONS = 8
SEED = 0


def centroid_count(n_tokens: int) -> int:
    """How many centroids a part of ``n_tokens`` token vectors gets: the largest power of two not above
    ``2 sqrt(n_tokens)`` (PLAID takes 16 sqrt; with float16 tokens kept for re-scoring, coarser centroids
    are enough to find candidates, and assigning every token costs ``tokens x k x dim``), at most
    ``n_tokens``; 0 for no tokens.

    >>> centroid_count(0), centroid_count(1), centroid_count(4_500_000)
    (0, 1, 4096)
    """
    if n_tokens <= 0:
        return 0
    k = 1 << int(np.floor(np.log2(max(1.0, CENTROIDS_PER_SQRT_TOKEN * np.sqrt(n_tokens)))))
    return int(min(k, n_tokens))


def assign(tokens: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """The nearest centroid (Euclidean) of each token: ``[n]`` int64 for ``tokens`` ``[n, dim]`` (float16,
    float32 or memory-mapped, read in chunks) and ``centroids`` ``[k, dim]`` float32.

    >>> assign(np.array([[0.9, 0.1], [0.1, 0.9]]), np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)).tolist()
    [1, 0]
    """
    centroids = np.asarray(centroids, np.float32)
    half_norms = 0.5 * (centroids * centroids).sum(axis=1)  # argmin |x - c|^2 = argmax x.c - |c|^2 / 2
    out = np.empty(len(tokens), np.int64)
    step = max(1, CHUNK_ELEMENTS // max(1, len(centroids)))
    for a in range(0, len(tokens), step):
        block = np.asarray(tokens[a:a + step], np.float32)
        out[a:a + len(block)] = np.argmax(block @ centroids.T - half_norms, axis=1)
    return out


def kmeans(tokens: np.ndarray, k: int, *, iterations: int = KMEANS_ITERATIONS, seed: int = SEED) -> np.ndarray:
    """``k`` centroids ``[k, dim]`` float32 of ``tokens`` ``[n, dim]`` (``1 <= k <= n``) by Lloyd's algorithm on
    a seeded sample of at most ``k * SAMPLE_PER_CENTROID`` tokens, starting from ``k`` distinct sampled tokens;
    a centroid left without tokens restarts at a random sampled token. Deterministic for given inputs.

    >>> sorted(round(float(c), 2) for c in kmeans(np.array([[0.0], [0.1], [5.0], [5.2]], np.float32), 2).ravel())
    [0.05, 5.1]
    """
    n = len(tokens)
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= k <= number of tokens, got k={k} for {n} tokens")
    rng = np.random.default_rng(seed)
    size = min(n, k * SAMPLE_PER_CENTROID)
    sample = np.asarray(tokens[np.sort(rng.choice(n, size, replace=False))] if size < n else tokens, np.float32)
    centroids = sample[rng.choice(len(sample), k, replace=False)].copy()
    for _ in range(iterations):
        labels = assign(sample, centroids)
        order = np.argsort(labels, kind="stable")
        counts = np.bincount(labels, minlength=k)
        filled = np.flatnonzero(counts)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[filled]
        centroids[filled] = np.add.reduceat(sample[order], starts, axis=0) / counts[filled, None]
        empty = np.flatnonzero(counts == 0)
        if len(empty):
            centroids[empty] = sample[rng.choice(len(sample), len(empty), replace=False)]
    return centroids


def ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The concatenated ``arange(start, end)`` of each pair (one vectorized gather index).

    >>> ranges(np.array([2, 7, 9]), np.array([4, 7, 10])).tolist()
    [2, 3, 9]
    """
    lengths = ends - starts
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, np.int64)
    return np.arange(total) + np.repeat(starts - np.cumsum(lengths) + lengths, lengths)


class CentroidIndex:
    """The inverted lists of one part: for each of ``k`` centroids the rows holding a token assigned to it,
    and for each row its distinct centroids (both from ``codes`` ``[tokens]``, the centroid of each token, and
    ``offsets`` ``[rows + 1]``, each row's first token). Built in one sort of the (row, centroid) pairs.

    >>> index = CentroidIndex(np.array([1, 1, 0, 2]), np.array([0, 2, 4]), k=3)
    >>> index.row_codes(np.array([1])).tolist(), index.rows_of(np.array([1])).tolist()
    ([0, 2], [0])
    """

    def __init__(self, codes: np.ndarray, offsets: np.ndarray, k: int) -> None:
        rows = len(offsets) - 1
        token_row = np.repeat(np.arange(rows, dtype=np.int64), np.diff(offsets))
        pairs = np.unique(token_row * k + np.asarray(codes, np.int64))  # sorted by row, then centroid
        pair_row = pairs // k
        code_dtype = np.uint16 if k <= 1 << 16 else np.int32
        self.k = k
        self.codes = (pairs % k).astype(code_dtype)  # each row's distinct centroids, rows in order
        self.code_ptr = np.searchsorted(pair_row, np.arange(rows + 1)).astype(np.int64)
        by_code = np.argsort(self.codes, kind="stable")  # rows stay ascending within a centroid's list
        self.list_rows = pair_row[by_code].astype(np.int32 if rows < 1 << 31 else np.int64)
        self.list_ptr = np.searchsorted(self.codes[by_code], np.arange(k + 1)).astype(np.int64)

    @property
    def nbytes(self) -> int:
        """Bytes of RAM the lists take."""
        return int(self.codes.nbytes + self.code_ptr.nbytes + self.list_rows.nbytes + self.list_ptr.nbytes)

    def rows_of(self, centroids: np.ndarray) -> np.ndarray:
        """The distinct rows holding a token of any of ``centroids`` (sorted)."""
        return np.unique(self.list_rows[ranges(self.list_ptr[centroids], self.list_ptr[centroids + 1])])

    def row_codes(self, rows: np.ndarray) -> np.ndarray:
        """The distinct centroids of each of ``rows``, concatenated (row by row)."""
        return self.codes[ranges(self.code_ptr[rows], self.code_ptr[rows + 1])]

    def candidates(self, centroid_scores: np.ndarray, nprobe: int, ndocs: int,
                   alive: np.ndarray | None = None) -> np.ndarray:
        """Up to ``ndocs`` candidate rows for one query, best first by centroid interaction, from its
        ``centroid_scores`` ``[query tokens, k]`` (query tokens . centroids): the rows reached by each query
        token's ``nprobe`` best centroids (rows with ``alive[row] == False`` skipped).

        >>> index = CentroidIndex(np.array([0, 1, 1]), np.array([0, 1, 3]), k=2)
        >>> index.candidates(np.array([[0.9, 0.1]]), nprobe=1, ndocs=5).tolist()
        [0]
        """
        nprobe = min(nprobe, self.k)
        if not len(centroid_scores) or nprobe <= 0 or ndocs <= 0:
            return np.zeros(0, np.int64)
        probed = np.unique(np.argpartition(-centroid_scores, nprobe - 1, axis=1)[:, :nprobe])
        rows = self.rows_of(probed)
        if alive is not None:
            rows = rows[alive[rows]]
        scores = self.interaction(centroid_scores, rows)
        if len(rows) > ndocs:
            best = np.argpartition(-scores, ndocs - 1)[:ndocs]
            rows, scores = rows[best], scores[best]
        return rows[np.lexsort((rows, -scores))]

    def interaction(self, centroid_scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Centroid-interaction scores ``[len(rows)]`` float32 of one query: MaxSim with each row's tokens
        replaced by their centroids (its distinct centroids suffice for a max), in chunks of rows."""
        out = np.empty(len(rows), np.float32)
        q_offsets = np.array([0, len(centroid_scores)])
        lengths = self.code_ptr[rows + 1] - self.code_ptr[rows]
        ends = np.cumsum(lengths)
        step = max(1, CHUNK_ELEMENTS // max(1, len(centroid_scores)))
        a = 0
        while a < len(rows):
            done = int(ends[a - 1]) if a else 0
            b = max(a + 1, int(np.searchsorted(ends, done + step, side="right")))
            d_offsets = np.concatenate([[0], ends[a:b] - done])
            out[a:b] = reduce_maxsim(centroid_scores[:, self.row_codes(rows[a:b])], q_offsets, d_offsets)[0]
            a = b
        return out


__all__ = ["CentroidIndex", "kmeans", "assign", "centroid_count", "ranges", "CENTROIDS_PER_SQRT_TOKEN",
           "SAMPLE_PER_CENTROID", "KMEANS_ITERATIONS"]
