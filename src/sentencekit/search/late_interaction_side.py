"""The late-interaction side of an :class:`~sentencekit.search.index.EmbeddingIndex`: every document (each
chunk, each title) kept as its token vectors, searched by MaxSim (ColBERT; ColBERTv2 / PLAID, Santhanam et
al. 2022), :func:`sentencekit.late_interaction.maxsim`.

A multi-vector encoder (``encode_document`` / ``encode_query(texts, convert_to_numpy=True)`` returning one
``[n_tokens_i, dim]`` array per text, as ``MultiVectorEncoder`` does) is read through one seam,
:func:`token_rows`, which packs the matrices (:class:`PackedTokens`: all tokens stacked, plus offsets).

Search, per segment (*part*), exact or through candidates:

* **exact**: MaxSim of the queries against every row of the part
  (:func:`~sentencekit.search.packed_maxsim.maxsim_packed`,
  in chunks of tokens, so memory stays bounded); used for parts under :data:`AUTO_CENTROID_MIN_ROWS` rows.
* **candidates** (:mod:`sentencekit.search.token_centroids`, PLAID-style): each query token probes its
  ``nprobe`` nearest k-means centroids of the part's tokens; the rows reached are ranked by centroid
  interaction (MaxSim with tokens replaced by their centroids), and the best ``ndocs`` are re-scored by
  exact MaxSim on their stored tokens. Returned scores are always exact MaxSim over the stored tokens.

``benchmarks/late_interaction_search.py`` (its docstring has the table): 100k synthetic documents of 45 tokens
(dim 128), queries of 32 tokens, 2 shared CPU cores: exact MaxSim takes ~2 s for one query (0.5 s per query in
a batch of 100); candidates with the defaults 28 ms at recall@10 1.000 against exact in one segment, 55 ms at
0.998 in ten; 11.8 KB per document on disk, 379 bytes in RAM.

Storage (never pickle; ``.npy`` loaded with ``allow_pickle=False``), one part per segment, written in the same
commit as the segment (:mod:`sentencekit.search.segment_sides` keeps the parts following add / delete /
compact, and lists their sizes and SHA-256 in the manifest's ``"multivector"`` entry, with the model's
fingerprint and the token dimension)::

    segments/mvr-000004-1a2b3c4d.mvtokens.npy     float16 [tokens, dim] every row's token vectors, in row order
    segments/mvr-000004-1a2b3c4d.mvoffsets.npy    int64 [rows + 1] first token of each row
    segments/mvr-000004-1a2b3c4d.mvcodes.npy      uint16 / int32 [tokens] nearest centroid of each token
    segments/mvr-000004-1a2b3c4d.mvcentroids.npy  float32 [k, dim] k-means centroids of the part's tokens

The token vectors stay memory-mapped: a candidate search reads only its candidates' tokens, and RAM holds
the centroids and their inverted lists (built when a part is first searched through candidates).

>>> side = LateInteractionSide([TokenPart.build(PackedTokens.of([np.eye(2), np.ones((1, 2))]))], dim=2)
>>> side.rows(np.array([1])).tokens.tolist()
[[1.0, 1.0]]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentencekit.search.index_errors import IndexMismatchError
from sentencekit.search.packed_maxsim import maxsim_packed, pack
from sentencekit.search.segment_sides import PartKind, empty_entry
from sentencekit.search.storage import SEGMENTS, check_size, damaged, load_npy, save_npy
from sentencekit.search.token_centroids import CentroidIndex, centroid_count, cluster, ranges

ROLES = {"tokens": "mvtokens.npy", "offsets": "mvoffsets.npy", "codes": "mvcodes.npy", "centroids": "mvcentroids.npy"}
# a part with fewer rows is searched exactly unless nprobe is given: one query's exact MaxSim costs ~13 ms per
# 1,000 rows of 45 tokens on 2 CPU cores (benchmarks/late_interaction_search.py), candidates ~10 ms at 100k rows
AUTO_CENTROID_MIN_ROWS = 2_000
SCORE_ELEMENTS = 1 << 24  # queries x rows of exact scores held at once (64 MiB of float32)


def default_nprobe(k: int) -> int:
    """Centroids each query token probes when ``nprobe`` is not given: more for deeper lists, as PLAID's
    defaults grow with ``k``."""
    return 2 if k <= 10 else 4 if k <= 100 else 8


def default_ndocs(k: int, parts: int = 1) -> int:
    """Candidates re-scored by exact MaxSim per query when ``ndocs`` is not given, for ``parts`` segments
    searched through candidates: twice as many from two segments on, since centroid-interaction scores of
    different segments (different centroids) compare less well (``benchmarks/late_interaction_search.py``,
    10 segments of 10k documents: recall@10 0.945 with 256, 0.998 with 512; one segment: 1.000 with 256)."""
    return max(256, 4 * k) * (2 if parts > 1 else 1)


@dataclass(frozen=True)
class PackedTokens:
    """Token matrices of ``rows`` texts stacked: ``tokens`` ``[total, dim]`` (float32, or float16 as stored) and
    ``offsets`` ``[rows + 1]`` int64 from 0 (row ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``).

    >>> PackedTokens.of([np.ones((2, 3)), np.ones((1, 3))]).select(np.array([1, 0])).offsets.tolist()
    [0, 1, 3]
    """

    tokens: np.ndarray
    offsets: np.ndarray

    @classmethod
    def of(cls, matrices: Sequence[np.ndarray], dim: int | None = None) -> PackedTokens:
        """Pack a list of ``[n_tokens_i, dim]`` matrices (``ValueError`` for one that is not 2-D)."""
        return cls(*pack(matrices, dim))

    @property
    def rows(self) -> int:
        return len(self.offsets) - 1

    def select(self, rows: np.ndarray) -> PackedTokens:
        """The token matrices of ``rows`` (any order), packed anew; reads only those rows' tokens."""
        rows = np.asarray(rows, np.int64)
        lengths = self.offsets[rows + 1] - self.offsets[rows]
        tokens = self.tokens[ranges(self.offsets[rows], self.offsets[rows + 1])]
        return PackedTokens(tokens.reshape(-1, self.tokens.shape[1]), np.concatenate([[0], np.cumsum(lengths)]))


# -- the one seam to multi-vector encoders ----------------------------------------------------------
def check_multivector_encoder(model: Any) -> None:
    """Refuse an object that cannot encode documents and queries as token matrices (``TypeError``), or a
    ``*ForRetrieval`` page retriever, whose documents are images (``ValueError``).

    >>> check_multivector_encoder(object())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: multivector_model must be a multi-vector encoder with encode_document(texts, ...) and ...; got object.
    """
    if not all(callable(getattr(model, m, None)) for m in ("encode_document", "encode_query")):
        raise TypeError("multivector_model must be a multi-vector encoder with encode_document(texts, "
                        "convert_to_numpy=True) and encode_query(...) returning one [n_tokens, dim] array per text "
                        f"(e.g. MultiVectorEncoder, ColBERT); got {type(model).__name__}.")
    if getattr(model, "is_page_retriever", False):
        # the index's documents are texts, which a ColPali-style model would render (and score) as queries
        raise ValueError("multivector_model is a *ForRetrieval page retriever (ColPali family), whose documents are "
                         "page images; the index holds text documents. Score pages with model.similarity("
                         "model.encode_query(queries), model.encode_document(images)).")


def token_rows(model: Any, texts: Sequence[str], *, query: bool) -> PackedTokens:
    """Encode ``texts`` with a multi-vector encoder: ``model.encode_query(texts, convert_to_numpy=True)`` if
    ``query`` else ``encode_document``, packed as float32. Raises ``TypeError`` when the model lacks the method,
    ``ValueError`` when it returns another number of texts, anything but 2-D matrices of one width (a dense
    model returns one vector per text), or non-finite values.

    >>> token_rows(colbert, ["refund policy"], query=False).tokens.shape  # doctest: +SKIP
    (5, 128)
    """
    check_multivector_encoder(model)
    texts = list(texts)
    output = getattr(model, "encode_query" if query else "encode_document")(texts, convert_to_numpy=True)
    matrices = list(output)
    if len(matrices) != len(texts):
        raise ValueError(f"The multi-vector model returned {len(matrices)} token matrices for {len(texts)} texts.")
    try:
        packed = PackedTokens.of(matrices)
    except ValueError as exc:
        raise ValueError(f"multivector_model ({type(model).__name__}) must return one [n_tokens, dim] matrix per "
                         f"text: {exc}") from exc
    if not np.isfinite(packed.tokens).all():
        raise ValueError("The multi-vector model returned NaN or infinite token vectors.")
    return packed


def encode(model: Any, entry: dict[str, Any], texts: Sequence[str], *, query: bool) -> PackedTokens:
    """:func:`token_rows`, refusing token vectors of another dimension than the index's
    (``IndexMismatchError``).

    >>> encode(colbert, index.manifest["multivector"], ["refund?"], query=True).tokens.shape  # doctest: +SKIP
    (32, 128)
    """
    rows = token_rows(model, texts, query=query)
    if len(rows.tokens) and rows.tokens.shape[1] != entry["dim"]:
        raise IndexMismatchError(f"The multi-vector model produced {rows.tokens.shape[1]}-dimensional token vectors, "
                                 f"but the index stores {entry['dim']}-dimensional ones: was the model changed after "
                                 "the index was opened? Reopen it with the multi-vector model it was built with.")
    return PackedTokens(rows.tokens.reshape(-1, entry["dim"]), rows.offsets)


# -- one part ---------------------------------------------------------------------------------------
class TokenPart:
    """One segment's stored token vectors (``tokens`` float16 ``[tokens, dim]``, usually memory-mapped;
    ``offsets`` ``[rows + 1]``), the centroid of each token (``codes``) and the ``centroids`` ``[k, dim]``."""

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray, codes: np.ndarray, centroids: np.ndarray) -> None:
        self.packed = PackedTokens(tokens, offsets)
        self.codes, self.centroids = codes, centroids
        self._lists: CentroidIndex | None = None

    @classmethod
    def build(cls, rows: PackedTokens) -> TokenPart:
        """A part of ``rows`` in memory: tokens rounded to float16, about
        :func:`~sentencekit.search.token_centroids.centroid_count` k-means centroids and each token's code
        (:func:`~sentencekit.search.token_centroids.cluster`)."""
        with np.errstate(over="ignore"):  # overflow is refused just below, with a message
            tokens = np.asarray(rows.tokens).astype(np.float16, copy=False)
        step = 1 << 20  # tokens checked at a time, so the check holds no second copy of the part
        if not all(np.isfinite(tokens[a:a + step]).all() for a in range(0, len(tokens), step)):
            raise ValueError("Token vectors beyond the float16 range (65504) cannot be stored; a multi-vector model "
                             "returns L2-normalized tokens, were these made by one?")
        k = centroid_count(len(tokens))
        centroids, codes = cluster(tokens, k) if k else (np.zeros((0, tokens.shape[1]), np.float32), np.zeros(0))
        codes = codes.astype(np.uint16 if len(centroids) <= 1 << 16 else np.int32)
        return cls(tokens, np.asarray(rows.offsets, np.int64), codes, centroids)

    @property
    def rows(self) -> int:
        return self.packed.rows

    @property
    def lists(self) -> CentroidIndex:
        """The centroids' inverted lists, built on first use (one sort of the part's tokens' codes)."""
        if self._lists is None:
            self._lists = CentroidIndex(self.codes, self.packed.offsets, len(self.centroids))
        return self._lists

    @property
    def nbytes(self) -> int:
        """Bytes of RAM for candidate search: centroids, offsets and inverted lists (once built); the token
        vectors and codes are memory-mapped and read on demand."""
        lists = self._lists.nbytes if self._lists is not None else 0
        return int(self.centroids.nbytes + self.packed.offsets.nbytes + lists)

    def maxsim(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact MaxSim ``[len(rows)]`` of one query ``[q_tokens, dim]`` against ``rows`` of this part."""
        selected = self.packed.select(rows)
        return maxsim_packed(query, np.array([0, len(query)]), selected.tokens, selected.offsets)[0]


def write_part(root: str | os.PathLike, name: str, segment: str, rows: PackedTokens) -> dict[str, Any]:
    """Build (:meth:`TokenPart.build`) and write one segment's part under ``segments/`` (each file through a
    temporary file and ``os.replace``); returns its record. Nothing refers to the files until a manifest
    listing them is committed.

    >>> write_part(folder, "mvr-000002-1a2b3c4d", "seg-000002-5e6f7a8b", rows)["rows"]  # doctest: +SKIP
    2
    """
    part = TokenPart.build(rows)
    folder = Path(root) / SEGMENTS
    roles = {role: f"{name}.{suffix}" for role, suffix in ROLES.items()}
    arrays = {"tokens": part.packed.tokens, "offsets": part.packed.offsets, "codes": part.codes,
              "centroids": part.centroids}
    for role, array in arrays.items():
        save_npy(folder / roles[role], array)
    return {"segment": segment, "name": name, "rows": part.rows, "tokens": int(len(part.packed.tokens)),
            "centroids": int(len(part.centroids)), "roles": roles}


def load_part(root: str | os.PathLike, part: dict[str, Any], dim: int, checks: dict[str, Any]) -> TokenPart:
    """Load a committed part (token vectors memory-mapped), checking its files against the manifest (sizes,
    shapes, dtypes, offsets, centroid numbers): damage raises
    :class:`~sentencekit.search.index_errors.IndexFormatError` naming the file; a missing file raises
    ``FileNotFoundError`` (a concurrent compaction may have removed it: re-read the manifest).

    >>> entry = manifest["multivector"]  # doctest: +SKIP
    >>> load_part(folder, entry["parts"][0], 128, entry["checks"]).rows  # doctest: +SKIP
    2
    """
    folder, roles = Path(root) / SEGMENTS, part["roles"]
    for file in roles.values():
        check_size(folder / file, checks.get(file))
    tokens, offsets, codes, centroids = (load_npy(folder / roles[r]) for r in ROLES)
    n, k = part["tokens"], part["centroids"]
    if tokens.dtype != np.float16 or tokens.shape != (n, dim):
        raise damaged(folder / roles["tokens"], f"holds {tokens.dtype} {tokens.shape}; the manifest recorded float16 "
                                                f"({n}, {dim})")
    if offsets.dtype.kind not in "iu" or offsets.shape != (part["rows"] + 1,):
        raise damaged(folder / roles["offsets"], f"holds {offsets.dtype} {offsets.shape}; the manifest recorded "
                                                 f"{part['rows']} rows")
    offsets = np.asarray(offsets, np.int64)
    if int(offsets[0]) != 0 or int(offsets[-1]) != n or (np.diff(offsets) < 0).any():
        raise damaged(folder / roles["offsets"], f"offsets are not a non-decreasing run from 0 to {n}")
    if codes.dtype.kind not in "iu" or codes.shape != (n,):
        raise damaged(folder / roles["codes"], f"holds {codes.dtype} {codes.shape}; the manifest recorded {n} codes")
    if n and (int(codes.min()) < 0 or int(codes.max()) >= k):
        raise damaged(folder / roles["codes"], f"refers to centroids outside 0..{k - 1}")
    if centroids.dtype.kind != "f" or centroids.shape != (k, dim) or not np.isfinite(centroids).all():
        raise damaged(folder / roles["centroids"], f"holds {centroids.dtype} {centroids.shape}; the manifest recorded "
                                                   f"({k}, {dim}) finite values")
    return TokenPart(tokens, offsets, codes, np.asarray(centroids, np.float32))


# -- search -----------------------------------------------------------------------------------------
class LateInteractionSide:
    """The loaded late-interaction side of one snapshot: its parts (one :class:`TokenPart` per segment, in
    log order, so the rows are numbered as the snapshot's vectors are)."""

    def __init__(self, parts: list[TokenPart], dim: int) -> None:
        self.parts, self.dim = parts, dim
        self.bases = np.cumsum([0] + [p.rows for p in parts]).astype(np.int64)

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.parts)

    def rows(self, rows: np.ndarray) -> PackedTokens:
        """The stored token matrices of global ``rows`` (float16), e.g. to carry them into a compacted segment."""
        rows = np.asarray(rows, np.int64)
        part_of = np.searchsorted(self.bases, rows, side="right") - 1
        local = rows - self.bases[part_of]
        lengths = np.zeros(len(rows), np.int64)
        for i in np.unique(part_of):
            offsets = self.parts[i].packed.offsets
            lengths[part_of == i] = offsets[local[part_of == i] + 1] - offsets[local[part_of == i]]
        out = np.concatenate([[0], np.cumsum(lengths)])
        tokens = np.empty((int(out[-1]), self.dim), np.float16)  # filled in place: one copy of the tokens in RAM
        for i in np.unique(part_of):
            chosen, packed = np.flatnonzero(part_of == i), self.parts[i].packed
            source = ranges(packed.offsets[local[chosen]], packed.offsets[local[chosen] + 1])
            tokens[ranges(out[chosen], out[chosen + 1])] = packed.tokens[source]
        return PackedTokens(tokens, out)

    def top(self, queries: PackedTokens, k: int, snap: Any, *, nprobe: int | None = None,
            ndocs: int | None = None) -> list[list[tuple[int, int, float]]]:
        """Per query (packed token matrices) up to ``k`` ``(document, row, score)`` over the live documents of
        ``snap``, best first by exact MaxSim (ties: row order); a query without tokens gets ``[]``.

        ``nprobe``: centroids each query token probes. ``None`` (default): parts of at least
        :data:`AUTO_CENTROID_MIN_ROWS` rows are searched through candidates with :func:`default_nprobe`, smaller
        ones exactly; a number searches every part through candidates; ``0`` searches every part exactly.
        ``ndocs``: candidate rows re-scored by exact MaxSim per query, the best by centroid interaction over
        all the parts searched through candidates (default :func:`default_ndocs`, 256 for ``k <= 64``, twice
        that when several segments are searched through candidates). Raises ``ValueError`` for a
        negative ``nprobe`` or a non-positive ``ndocs``.
        """
        if nprobe is not None and (not isinstance(nprobe, int) or nprobe < 0):
            raise ValueError(f"nprobe must be a non-negative integer (0: exact MaxSim), got {nprobe!r}")
        if ndocs is not None and (not isinstance(ndocs, int) or ndocs <= 0):
            raise ValueError(f"ndocs must be a positive integer (candidates re-scored exactly), got {ndocs!r}")
        probes = [_nprobe(part, nprobe, k) for part in self.parts]
        depth = ndocs or default_ndocs(k, sum(1 for p in probes if p))
        hits: list[list[tuple[int, int, float]]] = [[] for _ in range(queries.rows)]
        asked = [q for q in range(queries.rows) if queries.offsets[q + 1] > queries.offsets[q]]
        pools: dict[int, list[tuple[int, np.ndarray, np.ndarray]]] = {q: [] for q in asked}  # (part, rows, approx)
        for i, (part, base, probe) in enumerate(zip(self.parts, self.bases, probes)):
            alive = snap.alive[base:base + part.rows]
            if probe:
                for q in asked:
                    query = queries.tokens[queries.offsets[q]:queries.offsets[q + 1]]
                    pools[q].append((i, *part.lists.candidates(query @ part.centroids.T, probe, depth, alive)))
            else:
                _exact(part, queries, asked, alive, snap.row_doc[base:base + part.rows], base, k, hits)
        for q, pool in pools.items():
            # one pool across parts: as many exact re-scorings however many segments the index has
            approx = np.concatenate([scores for _, _, scores in pool]) if pool else np.zeros(0)
            chosen = np.zeros(len(approx), bool)
            chosen[np.argsort(-approx, kind="stable")[:depth]] = True
            query = queries.tokens[queries.offsets[q]:queries.offsets[q + 1]]
            start = 0
            for i, rows, _ in pool:
                rows, start = rows[chosen[start:start + len(rows)]], start + len(rows)
                part, base = self.parts[i], self.bases[i]
                hits[q] += _best_docs(rows, part.maxsim(query, rows), snap.row_doc[base:base + part.rows], base, k)
        return [sorted(h, key=lambda hit: (-hit[2], hit[1]))[:k] for h in hits]


def _nprobe(part: TokenPart, nprobe: int | None, k: int) -> int:
    """Centroids each query token probes in ``part`` (0: exact MaxSim over the whole part)."""
    if not len(part.centroids):
        return 0
    if nprobe is not None:
        return nprobe
    return default_nprobe(k) if part.rows >= AUTO_CENTROID_MIN_ROWS else 0


def _best_docs(rows: np.ndarray, scores: np.ndarray, row_doc: np.ndarray, base: int,
               k: int) -> list[tuple[int, int, float]]:
    """The ``k`` best documents of scored part ``rows`` (one hit per document, its best row), global numbers."""
    order = np.lexsort((rows, -scores))
    _, first = np.unique(row_doc[rows[order]], return_index=True)
    best = order[np.sort(first)][:k]
    return list(zip(row_doc[rows[best]].tolist(), (rows[best] + base).tolist(), scores[best].tolist()))


def _exact(part: TokenPart, queries: PackedTokens, asked: list[int], alive: np.ndarray, row_doc: np.ndarray,
           base: int, k: int, hits: list[list[tuple[int, int, float]]]) -> None:
    """Add to ``hits`` each asked query's ``k`` best documents of ``part`` by exact MaxSim over all its live
    rows, a batch of queries at a time (``SCORE_ELEMENTS`` scores held at once)."""
    starts = np.flatnonzero(np.concatenate([[True], row_doc[1:] != row_doc[:-1]]))  # each document's first row
    ends = np.append(starts[1:], part.rows)
    batch = max(1, SCORE_ELEMENTS // max(1, part.rows))
    for i in range(0, len(asked), batch):
        chosen = np.array(asked[i:i + batch])
        q_tokens = queries.tokens[ranges(queries.offsets[chosen], queries.offsets[chosen + 1])]
        q_offsets = np.concatenate([[0], np.cumsum(queries.offsets[chosen + 1] - queries.offsets[chosen])])
        scores = maxsim_packed(q_tokens, q_offsets, part.packed.tokens, part.packed.offsets)
        scores[:, ~alive] = -np.inf
        doc_scores = np.maximum.reduceat(scores, starts, axis=1) if len(starts) < part.rows else scores
        for q, row_scores, per_doc in zip(chosen, scores, doc_scores):
            docs = np.flatnonzero(np.isfinite(per_doc))
            if len(docs) > k:
                docs = docs[np.argpartition(-per_doc[docs], k - 1)[:k]]
            docs = docs[np.lexsort((docs, -per_doc[docs]))]
            rows = [int(s + np.argmax(row_scores[s:e])) for s, e in zip(starts[docs], ends[docs])]
            hits[q] += [(int(row_doc[r]), r + int(base), float(row_scores[r])) for r in rows]


class MultiVectorKind(PartKind):
    """The late-interaction side as a per-segment side (:mod:`sentencekit.search.segment_sides`): entry
    ``"multivector"`` with the token dimension, parts ``mvr-*``."""

    key, prefix, label, model_arg = "multivector", "mvr", "multi-vector", "multivector_model"
    why = "mixing two multi-vector models in one index would compare token vectors from different spaces"

    def require(self) -> None:
        """Nothing to install: the side needs NumPy only."""

    def check_model(self, model: Any) -> None:
        check_multivector_encoder(model)

    def new_entry(self, model: Any) -> dict[str, Any]:
        """The entry of an empty late-interaction side; the token dimension is measured by encoding a probe
        text (``ValueError`` when the model returns no token matrix, e.g. a dense or sparse model)."""
        probe = token_rows(model, ["dimension probe"], query=False)
        if not len(probe.tokens):
            raise ValueError(f"multivector_model ({type(model).__name__}) returned no token vectors for a probe text, "
                             "so the token dimension cannot be measured; pass a multi-vector encoder.")
        return empty_entry(self, model, dim=int(probe.tokens.shape[1]), dtype="float16")

    def encode(self, model: Any, entry: dict[str, Any], texts: Sequence[str], *, query: bool) -> PackedTokens:
        return encode(model, entry, texts, query=query)

    def row_count(self, rows: PackedTokens) -> int:
        return rows.rows

    def write_part(self, root: str | os.PathLike, name: str, segment: str, rows: PackedTokens,
                   entry: dict[str, Any]) -> dict[str, Any]:
        if len(rows.tokens) and rows.tokens.shape[1] != entry["dim"]:
            raise ValueError(f"Got {rows.tokens.shape[1]}-dimensional token vectors for segment {segment}; the index "
                             f"stores {entry['dim']}-dimensional ones.")
        return write_part(root, name, segment, PackedTokens(rows.tokens.reshape(-1, entry["dim"]), rows.offsets))

    def load_part(self, root: str | os.PathLike, part: dict[str, Any], entry: dict[str, Any]) -> TokenPart:
        return load_part(root, part, entry["dim"], entry.get("checks", {}))

    def side(self, parts: list[Any], entry: dict[str, Any]) -> LateInteractionSide:
        return LateInteractionSide(parts, entry["dim"])


MULTIVECTOR = MultiVectorKind()

__all__ = ["LateInteractionSide", "TokenPart", "PackedTokens", "MultiVectorKind", "MULTIVECTOR", "token_rows",
           "encode", "check_multivector_encoder", "write_part", "load_part", "default_nprobe", "default_ndocs",
           "AUTO_CENTROID_MIN_ROWS"]
