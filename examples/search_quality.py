"""Search quality of the main job on labelled queries: dense (embedding) retrieval, lexical (BM25)
retrieval, the two fused (reciprocal rank fusion, weighted score fusion), and each with the reranker.

    .venv/bin/python examples/search_quality.py [--reranker PATH] [--rerank-top-n 20]

Lexical and hybrid rows need ``pip install 'sentencekit[hybrid]'`` (bm25s, PyStemmer).

Queries and their relevant documents: `src/sentencekit/data/sample_queries.jsonl` (30 customer-style
questions over the bundled sample corpus). The reranker defaults to the one
`examples/train_stsb_reranker.py --install` puts in place.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUERIES = Path(__file__).resolve().parent.parent / "src" / "sentencekit" / "data" / "sample_queries.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--reranker", default=None, help="cross-encoder folder (default: the installed one)")
    parser.add_argument("--rerank-top-n", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()

    import numpy as np

    from sentencekit import CrossEncoder, SentenceTransformer
    from sentencekit.evaluation.metrics import mrr_at_k, ndcg_at_k, recall_at_k
    from sentencekit.search.corpus import SAMPLE_CORPUS
    from sentencekit.search.corpus_index import build_index
    from sentencekit.search.defaults import installed_reranker

    labelled = [json.loads(line) for line in QUERIES.read_text().splitlines() if line.strip()]
    model = SentenceTransformer(args.model)
    index, _ = build_index(SAMPLE_CORPUS, Path(tempfile.mkdtemp()) / "index", model)
    retrievals = {"dense": {"retrieval": "dense"}, "lexical (BM25)": {"retrieval": "lexical"},
                  "hybrid rrf": {"retrieval": "hybrid", "fusion": "rrf"},
                  "hybrid weighted": {"retrieval": "hybrid", "fusion": "weighted"}}
    runs = [(name, options, None) for name, options in retrievals.items()]
    reranker_path = args.reranker or installed_reranker()
    if reranker_path:
        reranker = CrossEncoder(str(reranker_path))
        runs += [(f"{name} + reranker ({Path(reranker_path).name}, top {args.rerank_top_n})", options, reranker)
                 for name, options in retrievals.items()]
    else:
        print("No reranker installed: run examples/train_stsb_reranker.py --install to compare.")
    queries = [q["query"] for q in labelled]
    print(f"{len(labelled)} labelled queries, {len(index)} documents, k={args.k}")
    for name, options, reranker in runs:
        results = index.search(queries, top_k=args.k, reranker=reranker, rerank_top_n=args.rerank_top_n, **options)
        rows = []
        for q, hits in zip(labelled, results):
            relevance = [1 if h["id"] in q["relevant"] else 0 for h in hits]
            n = len(q["relevant"])
            rows.append((mrr_at_k(relevance, args.k), ndcg_at_k(relevance, n, args.k), recall_at_k(relevance, n, 5),
                         relevance[0] if relevance else 0))
        mrr, ndcg, recall5, p1 = np.mean(rows, axis=0)
        print(f"{name:<55} MRR@{args.k} {mrr:.3f}  nDCG@{args.k} {ndcg:.3f}  Recall@5 {recall5:.3f}  P@1 {p1:.3f}")


if __name__ == "__main__":
    main()
