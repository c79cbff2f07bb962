"""Exact learned-sparse search (``sentencekit.search.sparse_side``) on synthetic SPLADE-like vectors: latency
of the ways to compute exact top-k dot products, and memory.

Documents have ~100 active terms out of a 30,522-term vocabulary, queries ~20; terms are drawn from a
Zipf-like popularity (rank^-skew), as wordpiece activations are, so common terms have long posting lists;
weights are log(1 + gamma), positive as SPLADE's are. Methods, all exact, all returning the same top-k:

* ``scipy Q @ D.T``: the CSR product the brief names (SciPy transposes D on every call);
* ``scipy Q @ postings``: the same product with the transposed matrix (posting lists) built once;
* ``SparseIndex``: NumPy adds each query term's posting list into one dense score array (what the index uses);

then ``EmbeddingIndex.search(retrieval="sparse")`` end to end (stand-in models that look vectors up, so no
encoder time is measured), with the index in 1 segment and in 20.

    .venv/bin/python benchmarks/sparse_search.py                  # 100k documents, 64 queries
    .venv/bin/python benchmarks/sparse_search.py --n 20000 --skew 0.6
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from sentencekit.search.sparse_side import SparseIndex, _best, to_csr

VOCAB = 30522


def draw(rng: np.random.Generator, n: int, terms: int, skew: float) -> sp.csr_matrix:
    """``n`` rows of ``terms`` distinct active terms (Zipf-like popularity), float32 weights."""
    p = 1.0 / np.arange(1, VOCAB + 1) ** skew
    p /= p.sum()
    popularity = np.random.default_rng(12345).permutation(VOCAB)  # which term ids are the common ones
    blocks = []
    for start in range(0, n, 5000):
        m = min(5000, n - start)
        cand = popularity[rng.choice(VOCAB, size=(m, 3 * terms), p=p)]
        key = rng.random(cand.shape)
        order = np.argsort(cand, axis=1, kind="stable")
        sorted_cand = np.take_along_axis(cand, order, 1)
        dup = np.zeros_like(cand, bool)
        dup[:, 1:] = sorted_cand[:, 1:] == sorted_cand[:, :-1]
        np.put_along_axis(key, order, np.where(dup, np.inf, np.take_along_axis(key, order, 1)), 1)
        pick = np.argsort(key, axis=1)[:, :terms]  # the first `terms` distinct terms, in random order
        cols = np.take_along_axis(cand, pick, 1)
        ok = np.isfinite(np.take_along_axis(key, pick, 1))
        rows = np.repeat(np.arange(m), terms)[ok.ravel()]
        data = np.log1p(rng.gamma(2.0, 1.0, ok.sum())).astype(np.float32)
        blocks.append(sp.csr_matrix((data, (rows, cols[ok])), shape=(m, VOCAB), dtype=np.float32))
    return to_csr(sp.vstack(blocks, format="csr"))


def timed(fn, reps: int = 3) -> tuple[float, object]:
    fn()
    best, out = float("inf"), None
    for _ in range(reps):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def select_all(scores: sp.csr_matrix, k: int) -> list[list[tuple[int, float]]]:
    out = []
    for i in range(scores.shape[0]):
        dense = np.zeros(scores.shape[1], np.float32)
        lo, hi = scores.indptr[i], scores.indptr[i + 1]
        dense[scores.indices[lo:hi]] = scores.data[lo:hi]
        out.append([(row, s) for _, row, s in _best(dense, k, None)])
    return out


class Lookup:
    """Stand-in models: the text ``"d<i>"`` / ``"q<i>"`` encodes to row ``i`` of fixed matrices."""

    def __init__(self, docs, queries, dense_docs, dense_queries) -> None:
        self.docs, self.queries, self.dense_docs, self.dense_queries = docs, queries, dense_docs, dense_queries
        self.prompts, self.truncate_dim, self.similarity_fn_name = {}, None, "cosine"
        self.model_name_or_path = "synthetic"

    def fingerprint(self) -> str:
        return "synthetic-lookup"

    @staticmethod
    def _rows(texts):
        return [int(t[1:]) if t[1:].isdigit() else 0 for t in texts]

    def encode(self, texts, normalize_embeddings=False, truncate_dim=None, **kwargs):
        table = self.dense_queries if texts and texts[0].startswith("q") else self.dense_docs
        return table[self._rows(texts)]

    def encode_document(self, texts, **kwargs):
        return self.docs[self._rows(texts)] if not kwargs else self.encode(texts, **kwargs)

    def encode_query(self, texts, **kwargs):
        return self.queries[self._rows(texts)] if not kwargs else self.encode(texts, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--doc-terms", type=int, default=100)
    parser.add_argument("--query-terms", type=int, default=20)
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--skew", type=float, default=0.8, help="Zipf exponent of term popularity")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--no-index", action="store_true", help="skip the EmbeddingIndex end-to-end part")
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    start = time.perf_counter()
    docs, queries = draw(rng, args.n, args.doc_terms, args.skew), draw(rng, args.queries, args.query_terms, args.skew)
    print(f"{args.n} documents x {VOCAB} terms: {docs.nnz / args.n:.1f} active terms each, queries "
          f"{queries.nnz / args.queries:.1f}; skew {args.skew}; drawn in {time.perf_counter() - start:.1f} s")
    touched = (queries @ docs.T).getnnz(axis=1)
    print(f"documents sharing a term with a query: median {int(np.median(touched))} "
          f"({np.median(touched) / args.n:.0%})")

    build, index = timed(lambda: SparseIndex(docs, canonical=True), reps=1)
    csr_bytes = docs.data.nbytes + docs.indices.nbytes + docs.indptr.nbytes
    print(f"SparseIndex build (transpose to posting lists): {build * 1e3:.0f} ms; posting lists "
          f"{index.nbytes / 2**20:.1f} MiB, documents' CSR {csr_bytes / 2**20:.1f} MiB")
    postings = docs.T.tocsr()
    methods = {
        "scipy Q @ D.T": lambda q: select_all(q @ docs.T, args.k),
        "scipy Q @ postings": lambda q: select_all((q @ postings).tocsr(), args.k),
        "SparseIndex": lambda q: index.top(q, args.k),
    }
    results = {}
    for batch in (args.queries, 1):
        q = queries[:batch]
        for name, fn in methods.items():
            seconds, results[name, batch] = timed(lambda fn=fn, q=q: fn(q))
            print(f"  {name:20s} batch {batch:3d}: {seconds * 1e3 / batch:7.2f} ms/query")
        # scores agree to float32 rounding (SparseIndex sums in float64); rows may swap only on near-ties
        first = results[next(iter(methods)), batch]
        for name in methods:
            for mine, theirs in zip(results[name, batch], first):
                assert np.allclose([s for _, s in mine], [s for _, s in theirs], rtol=1e-5), f"{name} disagrees"
    tracemalloc.start()
    index.top(queries, args.k)
    print(f"SparseIndex.top peak extra memory for {args.queries} queries: "
          f"{tracemalloc.get_traced_memory()[1] / 2**20:.1f} MiB (one score array per query at a time)")
    tracemalloc.stop()
    exact = (queries[:4].astype(np.float64) @ docs.T.astype(np.float64)).toarray()
    for row, hits in zip(exact, results["SparseIndex", args.queries][:4]):
        order = sorted(np.flatnonzero(row), key=lambda r: (-row[r], r))[: args.k]
        assert [r for r, _ in hits] == order, "SparseIndex top-k differs from float64 brute force"
    print("top-k checked against float64 brute force: identical")

    if args.no_index:
        return
    from sentencekit.search.index import EmbeddingIndex

    dense_docs = rng.standard_normal((args.n, 16)).astype(np.float32)
    model = Lookup(docs, queries, dense_docs, rng.standard_normal((args.queries, 16)).astype(np.float32))
    texts = [f"d{i}" for i in range(args.n)]
    q_texts = [f"q{i}" for i in range(args.queries)]
    for segments in (1, 20):
        folder = Path(tempfile.mkdtemp(prefix="sparse-bench-"))
        try:
            idx = EmbeddingIndex.create(folder / "idx", model, sparse_model=model)
            start = time.perf_counter()
            for chunk in np.array_split(np.arange(args.n), segments):
                idx.add([texts[i] for i in chunk], ids=[texts[i] for i in chunk], batch_size=4096)
            added = time.perf_counter() - start
            start = time.perf_counter()
            idx.search(q_texts[0], retrieval="sparse", top_k=args.k)
            first = time.perf_counter() - start
            per_query = []
            for q in q_texts:
                start = time.perf_counter()
                idx.search(q, retrieval="sparse", top_k=args.k)
                per_query.append(time.perf_counter() - start)
            seconds, _ = timed(lambda idx=idx: idx.search(q_texts, retrieval="sparse", top_k=args.k), reps=2)
            disk = sum(p.stat().st_size for p in (folder / "idx" / "segments").glob("spr-*"))
            print(f"EmbeddingIndex, {segments:2d} segment(s): add {added:.1f} s; first sparse search (loads + inverts) "
                  f"{first * 1e3:.0f} ms; one query median {statistics.median(per_query) * 1e3:.2f} ms; "
                  f"batch of {args.queries}: {seconds * 1e3 / args.queries:.2f} ms/query; sparse files "
                  f"{disk / 2**20:.1f} MiB; posting lists in RAM "
                  f"{idx._part_cache('sparse').side(idx.manifest).nbytes / 2**20:.1f} MiB")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
