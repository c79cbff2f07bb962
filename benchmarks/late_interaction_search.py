"""Late-interaction (ColBERT / MaxSim) search in ``EmbeddingIndex`` (:mod:`sentencekit.search.late_interaction_side`)
on synthetic token vectors: recall@10 of the PLAID-style candidate search against exact MaxSim, latency,
bytes per document and build time.

Documents have 30-60 tokens of dimension 128, queries 32 (a ColBERT query's length with expansion); token
vectors are unit-norm and clustered: 1,000 topics, each with 64 "word" prototypes drawn around its centre,
plus 512 common prototypes shared by all topics (stopwords, punctuation); a document takes 70% of its tokens
from its topic's words (Zipf-like), 10% from another topic, 20% common ones, each token a prototype plus
contextual noise. A query takes its topic's words, some common tokens and "expansion" tokens (mixtures of
its words), so the exact top 10 are same-topic documents sharing most of the query's words: not trivially
separable by a random projection, and not a grid of identical documents either.

The index is filled through ``EmbeddingIndex.add`` in ``--segments`` batches (stand-in models that look the
token matrices up, so no encoder time is measured), searched, compacted into one segment and searched again;
exact MaxSim (``nprobe=0``) is the reference for recall.

    .venv/bin/python benchmarks/late_interaction_search.py                 # 100k documents, 100 queries
    .venv/bin/python benchmarks/late_interaction_search.py --docs 20000    # a quick run
    .venv/bin/python benchmarks/late_interaction_search.py --faiss         # + faiss IVF-PQ over tokens

Measured (``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 ... --faiss``, 4:19 wall clock, peak RSS 4.1 GiB of which
1.1 GiB is the synthetic corpus): 100k documents (45 tokens on average, 4.5M tokens), 100 queries, top 10, a
2-core CPU shared with other jobs (load average 4-5 during the run), BLAS on one thread (with two BLAS threads
on the contended cores the small products of candidate search ran 4x slower; exact MaxSim's large ones do not
care). Recall@10 is against exact MaxSim over the same float16 tokens; every method returns exact scores:

====================================================  =========  ===========  ==========  ========  ===================
method                                                recall@10  batch of     one query   RAM       build
                                                                 100, ms/q    ms          B/doc
====================================================  =========  ===========  ==========  ========  ===================
exact MaxSim (``nprobe=0``)                           (1)        536          2,073       0         -
centroids, 1 segment: nprobe 2, ndocs 256 (default)   1.000      30           28          379       30 s (compact)
centroids, 1 segment: nprobe 1, ndocs 64              0.887      15           15          379
centroids, 1 segment: nprobe 1, ndocs 256             1.000      21           22          379
centroids, 1 segment: nprobe 2, ndocs 1024            1.000      47           44          379
centroids, 10 segments: nprobe 2, ndocs 512 (default) 0.998      51           55          616       22 s (10 adds)
centroids, 10 segments: nprobe 2, ndocs 256           0.945      45           51          616
faiss IVF1024,PQ16 over tokens: nprobe 8, k' 32       1.000      -            21          1,085     +36 s over tokens
faiss IVF1024,PQ16 over tokens: nprobe 32, k' 128     1.000      -            67          1,085
====================================================  =========  ===========  ==========  ========  ===================

Disk: 11.8 KB per document in one segment (float16 tokens: 256 bytes each, 11.5 KB; codes 90 B; the 32,768
centroids 168 B), 12.0 KB in 10 segments. RAM: the centroids, row offsets and inverted lists; the tokens
stay memory-mapped and only the re-scored candidates' are read. Through ``EmbeddingIndex.search`` (one
query, defaults): 21 ms in one segment, 49 ms in 10; the first search after opening loads the parts and
builds the lists (4.9 s for one 4.5M-token segment, 1.6 s for ten). The faiss row is ColBERTv1's candidate
generation (each query token's nearest tokens); at equal recall it is as fast on this data but holds 3x the
RAM and needs its own index over all tokens, where the centroids are built per segment in the commit, so the
index uses the centroid scheme. This data is easier than real ColBERT embeddings (nprobe 1 already finds
everything): the defaults keep a margin (ndocs 256 where 64 is 0.887).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from sentencekit.search.index import EmbeddingIndex
from sentencekit.search.late_interaction_side import (
    AUTO_CENTROID_MIN_ROWS,
    PackedTokens,
    default_ndocs,
    default_nprobe,
)

DIM, TOPICS, WORDS, COMMON = 128, 1000, 64, 512


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class Prototypes:
    """The synthetic vocabulary: ``TOPICS x WORDS`` topic words and ``COMMON`` shared tokens, unit vectors."""

    def __init__(self, rng: np.random.Generator, dim: int) -> None:
        centres = unit(rng.standard_normal((TOPICS, dim)))
        self.words = unit(centres[:, None, :] + 0.9 * unit(rng.standard_normal((TOPICS, WORDS, dim))))
        self.common = unit(rng.standard_normal((COMMON, dim)))
        popularity = 1.0 / np.arange(1, WORDS + 1) ** 0.8
        self.word_p = popularity / popularity.sum()

    def tokens(self, rng: np.random.Generator, topics: np.ndarray, lengths: np.ndarray, *, own: float,
               other: float, noise: float) -> np.ndarray:
        """Token vectors ``[lengths.sum(), dim]`` float32 of texts on ``topics``."""
        n = int(lengths.sum())
        topic = np.repeat(topics, lengths)
        kind = rng.random(n)
        topic = np.where((kind >= own) & (kind < own + other), rng.integers(0, TOPICS, n), topic)
        word = rng.choice(WORDS, n, p=self.word_p)
        base = np.where((kind < own + other)[:, None], self.words[topic, word], self.common[rng.integers(0, COMMON, n)])
        return unit(base + noise * rng.standard_normal(base.shape) / np.sqrt(base.shape[1])).astype(np.float32)


def make_documents(rng: np.random.Generator, protos: Prototypes, n: int) -> PackedTokens:
    lengths = rng.integers(30, 61, n)
    tokens = np.empty((int(lengths.sum()), DIM), np.float16)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    for a in range(0, n, 10_000):
        b = min(n, a + 10_000)
        tokens[offsets[a]:offsets[b]] = protos.tokens(rng, rng.integers(0, TOPICS, b - a), lengths[a:b], own=0.7,
                                                      other=0.1, noise=0.6)
    return PackedTokens(tokens, offsets)


def make_queries(rng: np.random.Generator, protos: Prototypes, n: int, length: int = 32) -> PackedTokens:
    topics = rng.integers(0, TOPICS, n)
    words = protos.tokens(rng, topics, np.full(n, length), own=0.8, other=0.0, noise=0.6).reshape(n, length, DIM)
    # the last third are expansion tokens: mixtures of the query's first words (what [MASK] tokens learn)
    mix = rng.dirichlet(np.ones(8), (n, length // 3))
    words[:, -(length // 3):] = unit(np.einsum("nem,nmd->ned", mix, words[:, :8]))
    return PackedTokens(words.reshape(-1, DIM), np.arange(n + 1) * length)


class Lookup:
    """Stand-in models: the text ``"d<i>"`` / ``"q<i>"`` encodes to document / query ``i``'s token matrix
    (multi-vector) or a random dense vector (the index's dense side, needed by ``EmbeddingIndex``)."""

    def __init__(self, docs: PackedTokens, queries: PackedTokens) -> None:
        self.docs, self.queries = docs, queries
        self.prompts, self.truncate_dim, self.similarity_fn_name = {}, None, "cosine"
        self.model_name_or_path = "synthetic"

    def fingerprint(self) -> str:
        return "synthetic-lookup"

    @staticmethod
    def _rows(texts) -> list[int]:
        return [int(t[1:]) if t[1:].isdigit() else 0 for t in texts]  # other texts: the index's probes

    def encode(self, texts, normalize_embeddings=False, truncate_dim=None, **kwargs):
        return np.stack([np.random.default_rng(s).standard_normal(8) for s in self._rows(texts)]).astype(np.float32)

    def _tokens(self, table: PackedTokens, texts) -> list[np.ndarray]:
        return [np.asarray(table.tokens[table.offsets[i]:table.offsets[i + 1]], np.float32) for i in self._rows(texts)]

    def encode_document(self, texts, convert_to_numpy=True, **kwargs):
        return self.encode(texts, **kwargs) if kwargs else self._tokens(self.docs, texts)

    def encode_query(self, texts, convert_to_numpy=True, **kwargs):
        return self.encode(texts, **kwargs) if kwargs else self._tokens(self.queries, texts)


def recall(found: list[list[tuple[int, int, float]]], exact: list[list[tuple[int, int, float]]], k: int) -> float:
    return float(np.mean([len({d for d, _, _ in f[:k]} & {d for d, _, _ in e[:k]}) / k for f, e in zip(found, exact)]))


def timed_search(side, queries: PackedTokens, k: int, snap, single: int, **options):
    """(batch ms/query, median single-query ms, results of the batch)."""
    start = time.perf_counter()
    results = side.top(queries, k, snap, **options)
    batch = (time.perf_counter() - start) * 1e3 / queries.rows
    times = []
    for q in range(min(single, queries.rows)):
        one = queries.select(np.array([q]))
        start = time.perf_counter()
        side.top(one, k, snap, **options)
        times.append((time.perf_counter() - start) * 1e3)
    return batch, statistics.median(times), results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--segments", type=int, default=10, help="add() batches before compaction")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--single", type=int, default=20, help="queries timed one by one (exact MaxSim: 3)")
    parser.add_argument("--nprobe", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--ndocs", type=int, nargs="*", default=[64, 256, 1024])
    parser.add_argument("--faiss", action="store_true", help="also measure faiss IVF-PQ token retrieval (ColBERTv1)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    protos = Prototypes(rng, DIM)
    docs, queries = make_documents(rng, protos, args.docs), make_queries(rng, protos, args.queries)
    print(f"{args.docs} documents, {len(docs.tokens) / args.docs:.1f} tokens each (dim {DIM}), {args.queries} queries "
          f"of 32 tokens; drawn in {time.perf_counter() - start:.1f} s")
    model = Lookup(docs, queries)
    folder = Path(tempfile.mkdtemp(prefix="mv-bench-"))
    try:
        index = EmbeddingIndex.create(folder / "idx", model, multivector_model=model)
        start = time.perf_counter()
        for chunk in np.array_split(np.arange(args.docs), args.segments):
            index.add([f"d{i}" for i in chunk], ids=[f"d{i}" for i in chunk], batch_size=4096)
        print(f"add in {args.segments} segments: {time.perf_counter() - start:.1f} s (float16 + k-means per segment, "
              f"{index.manifest['multivector']['parts'][0]['centroids']} centroids each)")
        exact = report(index, queries, args, f"{args.segments} segments", None) if args.segments > 1 else None
        start = time.perf_counter()
        index.compact()
        print(f"compact into 1 segment: {time.perf_counter() - start:.1f} s "
              f"({index.manifest['multivector']['parts'][0]['centroids']} centroids)")
        exact = report(index, queries, args, "1 segment", exact)
        if args.faiss:
            faiss_tokens(index, queries, args, exact)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def report(index: EmbeddingIndex, queries: PackedTokens, args, label: str, exact):
    """Print one layout's figures; returns the exact results (computed and timed if ``exact`` is None)."""
    manifest, k = index.manifest, args.k
    side = index._part_cache("multivector").side(manifest)
    snap = index._refresh()
    texts = [f"q{i}" for i in range(queries.rows)]
    start = time.perf_counter()
    index.search(texts[0], retrieval="multivector", top_k=k)
    first = time.perf_counter() - start
    per_query = []
    for q in texts[:args.single]:
        start = time.perf_counter()
        index.search(q, retrieval="multivector", top_k=k)
        per_query.append(time.perf_counter() - start)
    start = time.perf_counter()
    index.search(texts, retrieval="multivector", top_k=k)
    batch = (time.perf_counter() - start) / len(texts)
    disk = sum(p.stat().st_size for p in (index.path / "segments").glob("mvr-*"))
    n = len(index)
    parts = sum(1 for p in side.parts if p.rows >= AUTO_CENTROID_MIN_ROWS)
    print(f"[{label}] EmbeddingIndex.search(retrieval='multivector'), defaults (nprobe {default_nprobe(k)}, ndocs "
          f"{default_ndocs(k, parts)}): first search (loads parts, builds lists) {first * 1e3:.0f} ms, then one query "
          f"median {statistics.median(per_query) * 1e3:.1f} ms, batch {batch * 1e3:.1f} ms/query; disk "
          f"{disk / n:.0f} B/document; RAM {side.nbytes / n:.0f} B/document (centroids, offsets, lists; the tokens "
          "stay memory-mapped)")
    if exact is None:
        exact_batch, exact_single, exact = timed_search(side, queries, k, snap, 3, nprobe=0)
        print(f"[{label}]   exact MaxSim: batch {exact_batch:.1f} ms/query, one query {exact_single:.0f} ms")
    settings = [(p, d) for p in args.nprobe for d in args.ndocs] if label == "1 segment" else [
        (default_nprobe(k), d) for d in sorted(set(args.ndocs) | {default_ndocs(k, parts)})]
    for nprobe, ndocs in settings:
        batch, single, found = timed_search(side, queries, k, snap, args.single, nprobe=nprobe, ndocs=ndocs)
        print(f"[{label}]   nprobe {nprobe:2d} ndocs {ndocs:5d}: recall@{k} {recall(found, exact, k):.3f}, batch "
              f"{batch:.1f} ms/query, one query {single:.1f} ms")
    return exact


def faiss_tokens(index: EmbeddingIndex, queries: PackedTokens, args, exact, nlist: int = 1024, m: int = 16) -> None:
    """ColBERTv1's candidate generation for comparison: a faiss ``IndexIVFPQ`` over every token vector (``nlist``
    lists, ``m`` bytes per token); each query token fetches its ``k'`` nearest tokens, their documents are the
    candidates, re-scored by exact MaxSim on the stored float16 tokens."""
    import faiss

    part = index._part_cache("multivector").side(index.manifest).parts[0]
    tokens, offsets = part.packed.tokens, part.packed.offsets
    start = time.perf_counter()
    ivf = faiss.IndexIVFPQ(faiss.IndexFlatIP(DIM), DIM, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(0).choice(len(tokens), min(len(tokens), 64 * nlist), replace=False)
    ivf.train(np.asarray(tokens[np.sort(sample)], np.float32))
    for a in range(0, len(tokens), 500_000):
        ivf.add(np.asarray(tokens[a:a + 500_000], np.float32))
    build = time.perf_counter() - start
    token_row = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    ram = len(tokens) * (m + 8) + nlist * DIM * 4  # PQ codes and ids per token, the coarse centroids
    for nprobe, fetch in ((8, 32), (16, 64), (32, 128)):
        ivf.nprobe = nprobe
        found, times, reached = [], [], []
        for q in range(queries.rows):
            query = queries.tokens[queries.offsets[q]:queries.offsets[q + 1]]
            begin = time.perf_counter()
            _, ids = ivf.search(query, fetch)
            rows = np.unique(token_row[ids[ids >= 0]])
            reached.append(len(rows))
            scores = part.maxsim(query, rows)
            best = np.argsort(-scores, kind="stable")[:args.k]
            times.append(time.perf_counter() - begin)
            found.append([(int(r), int(r), float(sc)) for r, sc in zip(rows[best], scores[best])])
        print(f"[faiss IVF{nlist},PQ{m} over tokens] nprobe {nprobe} k' {fetch}: recall@{args.k} "
              f"{recall(found, exact, args.k):.3f}, one query {statistics.median(times) * 1e3:.1f} ms "
              f"({statistics.median(reached):.0f} documents re-scored); build "
              f"{build:.1f} s; RAM {ram / len(offsets):.0f} B/document")


if __name__ == "__main__":
    main()
