"""Search quality of the main job on labelled queries: dense (embedding) retrieval, lexical (BM25)
retrieval, the two fused (reciprocal rank fusion, weighted score fusion), and each with the reranker.

    .venv/bin/python examples/search_quality.py [--reranker PATH] [--rerank-top-n 20]

Lexical and hybrid rows need ``pip install 'sentencekit[hybrid]'`` (bm25s, PyStemmer).

Queries and their relevant documents: `src/sentencekit/data/sample_queries.jsonl` (30 customer-style
questions over the bundled sample corpus). The reranker defaults to the one `sentencekit search --rerank
auto` uses (`examples/train_insuranceqa_reranker.py --install` puts it in place).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUERIES = Path(__file__).resolve().parent.parent / "src" / "sentencekit" / "data" / "sample_queries.jsonl"


RETRIEVALS = {"dense": {"retrieval": "dense"}, "lexical (BM25)": {"retrieval": "lexical"},
              "hybrid rrf": {"retrieval": "hybrid", "fusion": "rrf"},
              "hybrid weighted": {"retrieval": "hybrid", "fusion": "weighted"}}


def labelled_queries() -> list[dict]:
    """The 30 labelled queries: ``{"query", "relevant": [document ids]}``."""
    return [json.loads(line) for line in QUERIES.read_text().splitlines() if line.strip()]


SPARSE_RETRIEVALS = {"sparse": {"retrieval": "sparse"},
                     "hybrid rrf dense + sparse": {"retrieval": "hybrid", "fusion": "rrf",
                                                   "fusion_weights": {"dense": 1.0, "sparse": 1.0}},
                     "hybrid rrf dense + sparse + lexical": {"retrieval": "hybrid", "fusion": "rrf"}}


def sample_index(model, sparse_model=None):  # noqa: ANN001, ANN201
    """The bundled sample corpus indexed with ``model`` (and a learned-sparse side from ``sparse_model``)
    in a temporary folder."""
    from sentencekit.search.corpus import SAMPLE_CORPUS
    from sentencekit.search.corpus_index import build_index

    index, _ = build_index(SAMPLE_CORPUS, Path(tempfile.mkdtemp()) / "index", model, sparse_model=sparse_model)
    return index


def search_quality(index, options: dict, reranker=None, rerank_top_n: int = 20, k: int = 10  # noqa: ANN001
                   ) -> dict[str, float]:
    """Mean MRR@k, nDCG@k, Recall@5 and P@1 of the labelled queries searched with ``options``."""
    import numpy as np

    from sentencekit.evaluation.metrics import mrr_at_k, ndcg_at_k, recall_at_k

    labelled = labelled_queries()
    results = index.search([q["query"] for q in labelled], top_k=k, reranker=reranker, rerank_top_n=rerank_top_n,
                           **options)
    rows = []
    for q, hits in zip(labelled, results):
        relevance = [1 if h["id"] in q["relevant"] else 0 for h in hits]
        n = len(q["relevant"])
        rows.append((mrr_at_k(relevance, k), ndcg_at_k(relevance, n, k), recall_at_k(relevance, n, 5),
                     relevance[0] if relevance else 0))
    mrr, ndcg, recall5, p1 = np.mean(rows, axis=0)
    return {f"MRR@{k}": float(mrr), f"nDCG@{k}": float(ndcg), "Recall@5": float(recall5), "P@1": float(p1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--reranker", default=None, help="cross-encoder folder (default: the installed one)")
    parser.add_argument("--rerank-top-n", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--sparse", default=None, help="a SparseEncoder (e.g. SPLADE-tiny) for learned-sparse rows")
    args = parser.parse_args()

    from sentencekit import CrossEncoder, SentenceTransformer, SparseEncoder
    from sentencekit.search.defaults import installed_reranker

    model = SentenceTransformer(args.model)
    index = sample_index(model)
    runs = [(name, options, None) for name, options in RETRIEVALS.items()]
    sparse_runs = []
    if args.sparse:
        sparse_index = sample_index(model, SparseEncoder(args.sparse))
        sparse_runs = [(f"{name} ({Path(args.sparse).name})", options, None)
                       for name, options in SPARSE_RETRIEVALS.items()]
    reranker_path = args.reranker or installed_reranker()
    if reranker_path:
        reranker = CrossEncoder(str(reranker_path))
        runs += [(f"{name} + reranker ({Path(reranker_path).name}, top {args.rerank_top_n})", options, reranker)
                 for name, options in RETRIEVALS.items()]
    else:
        print("No reranker installed: run examples/train_insuranceqa_reranker.py --install to compare.")
    print(f"{len(labelled_queries())} labelled queries, {len(index)} documents, k={args.k}")
    for name, options, reranker in runs + sparse_runs:
        m = search_quality(sparse_index if (name, options, reranker) in sparse_runs else index, options, reranker,
                           args.rerank_top_n, args.k)
        print(f"{name:<55} " + "  ".join(f"{key} {value:.3f}" for key, value in m.items()))


if __name__ == "__main__":
    main()
