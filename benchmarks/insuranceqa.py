"""InsuranceQA test: BM25, dense, hybrid, each with the QA reranker, and the fine-tuned embedder, in one
table of P@1, MRR@10, nDCG@10 and Recall@100. Every system ranks each question's pool (its correct
answers plus 200 negatives), the standard InsuranceQA protocol.

    SENTENCEKIT_HOME=/tmp/sk-home-qa PYTHONPATH=src:examples nice -n 10 .venv/bin/python benchmarks/insuranceqa.py \\
        --limit 200 --k 10 --reranker out/insuranceqa-reranker/final

- BM25: `sentencekit.search.lexical.LexicalIndex` over all 27,413 answers (corpus-wide statistics), each
  pool ordered by its BM25 scores (answers sharing no term with the question last, in pool order).
- dense: all-MiniLM-L6-v2 (`SentenceTransformer.encode`, cosine).
- hybrid: `sentencekit.search.fusion.reciprocal_rank_fusion` of the BM25 and dense pool rankings (k=60).
- + reranker: the top --k of that row reranked with the QA reranker (`CrossEncoder.predict`), the rest
  of the pool below in the row's order (so reranking moves P@1 / MRR@10 / nDCG@10, never Recall@100).
- fine-tuned: the MNRL-fine-tuned embedder of `examples/train_insuranceqa_embedder.py`, alone and fused.

Models: `$SENTENCEKIT_HOME/models/insuranceqa-reranker` and `.../insuranceqa-minilm` (the training
scripts' `--install`; the reranker is installed only when it does not hurt the sample corpus), or
--reranker / --embedder. The base model's answer embeddings are cached under
`$SENTENCEKIT_HOME/datasets/insuranceqa/embeddings/` (the reranker's training made them); the fine-tuned
model embeds the pools of the questions asked. bf16 compute where the CPU has it.

Measured, run 2 (2 cores; models from `train_insuranceqa_reranker.py --max-minutes 85`, 1,562 steps = 0.59
epoch, and `train_insuranceqa_embedder.py --max-minutes 12`, 340 steps = 0.51 epoch), `--limit 500 --k 10`,
3 min in all:

    system                                          P@1     MRR@10  nDCG@10  Recall@100
    BM25                                            0.220   0.303   0.297    0.681
    BM25 + reranker@10                              0.284   0.357   0.335    0.681
    dense (all-MiniLM-L6-v2)                        0.380   0.505   0.519    0.978
    dense + reranker@10                             0.402   0.523   0.525    0.978
    hybrid (RRF BM25 + dense)                       0.294   0.390   0.382    0.944
    hybrid + reranker@10                            0.324   0.418   0.402    0.944
    fine-tuned embedder                             0.434   0.562   0.573    0.990
    fine-tuned hybrid (RRF BM25 + fine-tuned)       0.306   0.408   0.401    0.964
    fine-tuned hybrid + reranker@10                 0.324   0.424   0.414    0.964

The 85-minute reranker helps every first stage it reranks (+0.02 to +0.06 P@1), where the half-hour one
of run 1 (0.04 epoch; `--limit 200`: dense 0.415 -> 0.255) hurt every one; RRF with BM25 still lowers dense:
BM25 is weak inside these pools (P@1 0.22 vs 0.38), and equal-weight RRF lets it pull answers up past dense's
first choice. All 2,000 test questions, first stages only (no models given, 2.5 min): BM25 0.224 / 0.304 /
0.300 / 0.698, dense 0.373 / 0.500 / 0.508 / 0.968, hybrid 0.303 / 0.402 / 0.395 / 0.931 (same columns).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))  # the shared InsuranceQA helpers


BM25, DENSE, HYBRID = "BM25", "dense (all-MiniLM-L6-v2)", "hybrid (RRF BM25 + dense)"
TUNED, TUNED_HYBRID = "fine-tuned embedder", "fine-tuned hybrid (RRF BM25 + fine-tuned)"


def bm25_pool_rankings(data, questions) -> list[list[str]]:  # noqa: ANN001
    """Each pool ordered by BM25 over the whole answer collection (the library's lexical index)."""
    from sentencekit.search.lexical import LexicalIndex

    ids = sorted(data.answers, key=int)
    index = LexicalIndex.build(ids, [data.answers[i] for i in ids])
    rankings = []
    for question in questions:
        # scores of every answer that shares a term with the question; the pool keeps its own order after
        pool = set(question.pool)
        hits = [aid for aid, _ in index.top([question.text], k=len(ids))[0] if aid in pool]
        seen = set(hits)
        rankings.append(hits + [aid for aid in question.pool if aid not in seen])
    return rankings


def fuse(*rankings_per_system: list[list[str]]) -> list[list[str]]:
    """Per question, RRF (k=60) of the systems' pool rankings."""
    from sentencekit.search.fusion import reciprocal_rank_fusion

    return [[aid for aid, _ in reciprocal_rank_fusion(list(lists), k=60)] for lists in zip(*rankings_per_system)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=2000, help="first N test questions (same for every row)")
    parser.add_argument("--k", type=int, default=10, help="top-k of each first stage that the reranker rescores")
    parser.add_argument("--reranker", default=None)
    parser.add_argument("--embedder", default=None)
    parser.add_argument("--split", default="test", choices=("valid", "test"))
    args = parser.parse_args()

    from insuranceqa_data import (
        METRICS,
        compute_dtype,
        dense_pool_rankings,
        load_embedder,
        load_insuranceqa,
        pool_metrics,
        rerank_top_k,
    )

    from sentencekit import CrossEncoder
    from sentencekit.spec.home import sentencekit_home

    models = sentencekit_home() / "models"
    reranker_path = Path(args.reranker or models / "insuranceqa-reranker")
    embedder_path = Path(args.embedder or models / "insuranceqa-minilm")
    data = load_insuranceqa()
    questions = data.questions(args.split, args.limit)
    rows: dict[str, list[list[str]]] = {}
    timings: dict[str, float] = {}

    def timed(name: str, make) -> list[list[str]]:  # noqa: ANN001
        start = time.perf_counter()
        rows[name] = make()
        timings[name] = time.perf_counter() - start
        print(f"{name}: {timings[name]:.0f} s", flush=True)
        return rows[name]

    bm25 = timed(BM25, lambda: bm25_pool_rankings(data, questions))
    dense = timed(DENSE, lambda: dense_pool_rankings(load_embedder(), data, questions, cache=True))
    hybrid = timed(HYBRID, lambda: fuse(bm25, dense))
    tuned_hybrid = None
    if (embedder_path / "modules.json").is_file():
        # not cached: only this prefix's pool answers are embedded (the base model's cache holds all 27k)
        tuned = timed(TUNED, lambda: dense_pool_rankings(load_embedder(str(embedder_path)), data, questions))
        tuned_hybrid = timed(TUNED_HYBRID, lambda: fuse(bm25, tuned))
    else:
        print(f"No fine-tuned embedder at {embedder_path}: its rows are left out.")
    reranked = f" + reranker@{args.k}"
    if (reranker_path / "config.json").is_file():
        reranker = CrossEncoder(str(reranker_path), compute_dtype=compute_dtype())
        memo: dict[tuple[str, str], float] = {}  # overlapping top-k lists: score each pair once
        for name, first in ((BM25, bm25), (DENSE, dense), (HYBRID, hybrid), (TUNED_HYBRID, tuned_hybrid)):
            if first is not None:
                timed(name + reranked, lambda first=first: rerank_top_k(reranker, data, questions, first, args.k,
                                                                        scores=memo))
    else:
        print(f"No QA reranker at {reranker_path}: the reranked rows are left out.")

    order = [BM25, BM25 + reranked, DENSE, DENSE + reranked, HYBRID, HYBRID + reranked, TUNED, TUNED_HYBRID,
             TUNED_HYBRID + reranked]
    names = [name for name in order if name in rows]
    print(f"\nInsuranceQA {args.split}, first {len(questions)} questions, ranking inside each pool "
          f"(positives + 200 negatives); reranker depth k={args.k}\n")
    width = max(len(n) for n in names)
    print(f"| {'system':<{width}} | " + " | ".join(f"{m:>10}" for m in METRICS) + " | time (s) |")
    print(f"|{'-' * (width + 2)}|" + "|".join("-" * 12 for _ in METRICS) + "|----------|")
    for name in names:
        metrics = pool_metrics(rows[name], questions)
        print(f"| {name:<{width}} | " + " | ".join(f"{metrics[m]:>10.4f}" for m in METRICS)
              + f" | {timings[name]:>8.0f} |")


if __name__ == "__main__":
    main()
