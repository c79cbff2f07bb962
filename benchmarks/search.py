"""Search paths of ``EmbeddingIndex`` on synthetic vectors: latency, recall@10 against exact search, and
memory of the stored vectors.

The corpus is clustered (points around random centres on the unit sphere) so that nearest neighbours
are meaningful; queries are drawn the same way. A stand-in model maps the text ``"v<i>"`` to row ``i``,
so the whole index stack (storage, scanning, rescoring, per-document results) is measured without
spending time in a transformer.

    .venv/bin/python benchmarks/search.py                      # 100k x 384, 200 queries
    .venv/bin/python benchmarks/search.py --n 20000 --queries 50
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sentencekit.search.index import EmbeddingIndex


class LookupModel(torch.nn.Module):
    """A stand-in bi-encoder: the text ``"v<i>"`` embeds to row ``i`` of a fixed matrix."""

    def __init__(self, vectors: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("table", torch.from_numpy(vectors))
        self.prompts, self.truncate_dim, self.similarity_fn_name = {"query": "", "document": ""}, None, "cosine"
        self.model_name_or_path = "synthetic-lookup"

    def __iter__(self):
        return iter([])

    def get_sentence_embedding_dimension(self) -> int:
        return int(self.table.shape[1])

    def encode(self, texts, prompt=None, normalize_embeddings=False, truncate_dim=None, **kwargs):
        rows = self.table.numpy()[[int(t[1:]) if t.startswith("v") else 0 for t in texts]][:, :truncate_dim]
        return rows / np.linalg.norm(rows, axis=1, keepdims=True) if normalize_embeddings else rows

    encode_query = encode_document = encode


def synthetic(n: int, n_queries: int, dim: int, clusters: int, spread: float, seed: int) -> np.ndarray:
    """``n`` corpus rows then ``n_queries`` query rows, unit length, around ``clusters`` random centres."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32)
    labels = rng.integers(0, clusters, n + n_queries)
    points = centers[labels] + spread * rng.standard_normal((n + n_queries, dim)).astype(np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def folder_bytes(path: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file())


def scanned_bytes(path: Path, precision: str, hnsw: bool) -> int:
    """Bytes of the vectors a search scans: the HNSW graph file, else the float32 / int8 / bit arrays."""
    if hnsw:
        return folder_bytes(path / "ann", "hnsw-*.faiss")
    suffix = {"float32": "*.f32.npy", "int8": "*.int8.npy", "ubinary": "*.ubin.npy"}[precision]
    return folder_bytes(path / "segments", suffix)


def run_path(root: Path, model: LookupModel, n: int, queries: list[str], precision: str, backend: str,
             multiplier: int) -> dict:
    path = root / f"{precision}-{backend}"
    index = EmbeddingIndex.create(path, model, precision=precision, backend=backend)
    start = time.perf_counter()
    for a in range(0, n, 25_000):  # four segments, as four add() calls would make
        index.add([f"v{i}" for i in range(a, min(a + 25_000, n))], batch_size=4096)
    add_s = time.perf_counter() - start
    start = time.perf_counter()
    index.search(queries[0], top_k=10, rescore_multiplier=multiplier)  # builds the HNSW graph, warms pages
    first_s = time.perf_counter() - start
    latencies, results = [], []
    for q in queries:
        start = time.perf_counter()
        results.append([int(h["id"]) for h in index.search(q, top_k=10, rescore_multiplier=multiplier)])
        latencies.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    index.search(queries, top_k=10, rescore_multiplier=multiplier)
    batch_ms = (time.perf_counter() - start) * 1000 / len(queries)
    return {"results": results, "p50": statistics.median(latencies), "batch": batch_ms, "add_s": add_s,
            "first_s": first_s, "scanned": scanned_bytes(path, precision, backend == "hnsw"),
            "disk": folder_bytes(path)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--spread", type=float, default=0.8, help="per-dimension noise around a centre")
    parser.add_argument("--rescore-multiplier", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    vectors = synthetic(args.n, args.queries, args.dim, args.clusters, args.spread, args.seed)
    model = LookupModel(vectors)
    queries = [f"v{args.n + i}" for i in range(args.queries)]
    truth = np.argsort(-(vectors[args.n :] @ vectors[: args.n].T), axis=1)[:, :10]
    print(f"corpus {args.n} x {args.dim} ({args.clusters} clusters, spread {args.spread}), {args.queries} queries, "
          f"top_k=10, rescore_multiplier={args.rescore_multiplier}, {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}")
    paths = [("exact float32", "float32", "exact"), ("HNSW float32", "float32", "hnsw"),
             ("ubinary + rescore", "ubinary", "exact"), ("int8 + rescore", "int8", "exact")]
    root = Path(tempfile.mkdtemp(prefix="sentencekit-search-bench-"))
    try:
        print(f"{'path':<20}{'p50 ms/query':>13}{'batched ms/q':>13}{'recall@10':>10}{'scanned MiB':>12}"
              f"{'disk MiB':>10}{'first search s':>15}")
        for label, precision, backend in paths:
            r = run_path(root, model, args.n, queries, precision, backend, args.rescore_multiplier)
            recall = np.mean([len(set(f) & set(t.tolist())) / 10 for f, t in zip(r["results"], truth)])
            print(f"{label:<20}{r['p50']:>13.2f}{r['batch']:>13.2f}{recall:>10.3f}{r['scanned'] / 2**20:>12.1f}"
                  f"{r['disk'] / 2**20:>10.1f}{r['first_s']:>15.2f}")
            shutil.rmtree(root / f"{precision}-{backend}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("scanned = vectors a search reads (float32 / int8 codes / sign bits, or the HNSW file incl. its vectors);"
          "\ndisk = whole index folder (quantized indexes keep float32 vectors on disk for rescoring); "
          "first search includes building the HNSW graph.")


if __name__ == "__main__":
    main()
