"""Candidate generation for late-interaction search, PLAID-style (Santhanam, Khattab, Potts and Zaharia,
"PLAID: An Efficient Engine for Late Interaction Retrieval", CIKM 2022; the centroids of ColBERTv2,
Santhanam et al., NAACL 2022): k-means centroids over a part's token vectors, each token assigned to its
nearest centroid, and per query

1. each query token probes its ``nprobe`` best centroids (by dot product): the documents holding a token of
   a probed centroid are the candidates (an inverted list per centroid);
2. *centroid interaction*: each candidate is scored by MaxSim with its tokens replaced by their centroids
   (``sum_i max_j q_i . c(d_j)``, read from the ``[query tokens, centroids]`` score matrix, so no token
   vector is touched);
3. the ``ndocs`` best of those are returned with their approximate scores, for exact MaxSim re-scoring by the
   caller.

The centroids are as many as PLAID's (:func:`centroid_count`, ``16 sqrt(tokens)``: fine enough that a
centroid stands for about one word sense, so centroid interaction ranks candidates well and each inverted list
is short). Assigning millions of tokens to tens of thousands of centroids by brute force would take minutes on
a CPU, so :func:`cluster` trains and assigns in two levels: ``sqrt(k)`` coarse cells, then k-means inside each
cell, and each token goes to the nearest fine centroid of its nearest cell (an approximation near cell borders,
harmless for finding candidates). Unlike PLAID, tokens are not residual-compressed: the caller keeps them as
float16 for exact re-scoring.

>>> rng = np.random.default_rng(0)
>>> tokens = rng.standard_normal((200, 8)).astype(np.float32)
>>> centroids, codes = cluster(tokens, 16)
>>> centroids.shape[1], codes.shape, int(codes.max()) < len(centroids)
(8, (200,), True)
"""

from __future__ import annotations

import numpy as np

from sentencekit.search.packed_maxsim import CHUNK_ELEMENTS, reduce_maxsim

CENTROIDS_PER_SQRT_TOKEN = 16  # PLAID's: k = largest power of two <= 16 sqrt(tokens), 32768 for 4.5M tokens
SAMPLE_PER_CENTROID = 16  # k-means trains on a seeded sample of at most this many tokens per centroid
KMEANS_ITERATIONS = 8
SEED = 0


def centroid_count(n_tokens: int) -> int:
    """How many centroids a part of ``n_tokens`` token vectors gets: the largest power of two not above
    ``16 sqrt(n_tokens)`` (PLAID's rule), at most ``n_tokens``; 0 for no tokens.

    >>> centroid_count(0), centroid_count(3), centroid_count(4_500_000)
    (0, 3, 32768)
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
    sample = _sample(tokens, k * SAMPLE_PER_CENTROID, rng)
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


def _sample(tokens: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``size`` of ``tokens`` (a seeded choice, in order), as float32."""
    if size >= len(tokens):
        return np.asarray(tokens, np.float32)
    return np.asarray(tokens[np.sort(rng.choice(len(tokens), size, replace=False))], np.float32)


def cluster(tokens: np.ndarray, k: int, *, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """About ``k`` centroids of ``tokens`` ``[n, dim]`` (float16 / float32, ``1 <= k <= n``) and the centroid of
    each token: ``(centroids [k', dim] float32, codes [n] int64)``, ``k'`` within a few of ``k``. Two levels:
    ``sqrt(k)`` coarse centroids (k-means on a sample), then each coarse cell's share of ``k`` fine centroids
    by k-means on the cell's sampled tokens; a token's code is the nearest fine centroid of its nearest cell.
    Costs ``n x (sqrt(k) + k / sqrt(k)) x dim`` instead of ``n x k x dim``. Deterministic for given inputs.

    >>> centroids, codes = cluster(np.array([[0.0], [0.1], [5.0], [5.2]], np.float32), 2)
    >>> bool(codes[0] == codes[1] != codes[2] == codes[3])
    True
    """
    n = len(tokens)
    if not 1 <= k <= n:
        raise ValueError(f"clustering needs 1 <= k <= number of tokens, got k={k} for {n} tokens")
    sample = _sample(tokens, k * SAMPLE_PER_CENTROID, np.random.default_rng(seed))
    cells = min(k, 1 << int(np.ceil(np.log2(np.sqrt(k)))))
    coarse = kmeans(sample, cells, seed=seed)
    labels = assign(sample, coarse)
    fine, cell_ptr = [], [0]
    for c in range(cells):
        members = sample[labels == c]
        share = int(np.clip(round(k * len(members) / len(sample)), 1, max(1, len(members))))
        # a cell no sampled token fell in keeps its coarse centroid, so every cell has one to assign to
        fine.append(kmeans(members, share, seed=seed) if len(members) else coarse[c:c + 1])
        cell_ptr.append(cell_ptr[-1] + len(fine[-1]))
    codes = np.empty(n, np.int64)
    cell_of = assign(tokens, coarse)
    order = np.argsort(cell_of, kind="stable")  # each cell's tokens, in file order (sequential reads)
    bounds = np.searchsorted(cell_of[order], np.arange(cells + 1))
    for c in range(cells):
        members = order[bounds[c]:bounds[c + 1]]
        if len(members):
            codes[members] = cell_ptr[c] + assign(tokens[members], fine[c])
    return np.concatenate(fine).astype(np.float32), codes


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
                   alive: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``ndocs`` candidate rows for one query and their centroid-interaction scores, best first
        (``(rows [m] int64, scores [m] float32)``), from its ``centroid_scores`` ``[query tokens, k]`` (query
        tokens . centroids): the rows reached by each query token's ``nprobe`` best centroids (rows with
        ``alive[row] == False`` skipped).

        >>> index = CentroidIndex(np.array([0, 1, 1]), np.array([0, 1, 3]), k=2)
        >>> index.candidates(np.array([[0.9, 0.1]]), nprobe=1, ndocs=5)[0].tolist()
        [0]
        """
        nprobe = min(nprobe, self.k)
        if not len(centroid_scores) or nprobe <= 0 or ndocs <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        top = self.k - nprobe  # partition without negating (a copy of the [query tokens, k] matrix)
        rows = self.rows_of(np.unique(np.argpartition(centroid_scores, top, axis=1)[:, top:]))
        if alive is not None:
            rows = rows[alive[rows]]
        scores = self.interaction(centroid_scores, rows)
        best = np.argsort(-scores, kind="stable")[:ndocs]  # rows are ascending: ties go by row
        return rows[best], scores[best]

    def interaction(self, centroid_scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Centroid-interaction scores ``[len(rows)]`` float32 of one query: MaxSim with each row's tokens
        replaced by their centroids (its distinct centroids suffice for a max), in chunks of rows."""
        out = np.empty(len(rows), np.float32)
        by_centroid = np.ascontiguousarray(centroid_scores.T)  # [k, query tokens]: a code's scores are one row
        q_offsets = np.array([0, len(centroid_scores)])
        lengths = self.code_ptr[rows + 1] - self.code_ptr[rows]
        ends = np.cumsum(lengths)
        step = max(1, CHUNK_ELEMENTS // max(1, len(centroid_scores)))
        a = 0
        while a < len(rows):
            done = int(ends[a - 1]) if a else 0
            b = max(a + 1, int(np.searchsorted(ends, done + step, side="right")))
            d_offsets = np.concatenate([[0], ends[a:b] - done])
            gathered = np.take(by_centroid, self.row_codes(rows[a:b]), axis=0)
            out[a:b] = reduce_maxsim(gathered, q_offsets, d_offsets, doc_major=True)[0]
            a = b
        return out


__all__ = ["CentroidIndex", "cluster", "kmeans", "assign", "centroid_count", "ranges", "CENTROIDS_PER_SQRT_TOKEN",
           "SAMPLE_PER_CENTROID", "KMEANS_ITERATIONS"]
