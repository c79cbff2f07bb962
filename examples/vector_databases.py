"""Export a stored index to a vector database (LanceDB, or PostgreSQL + pgvector) and search it there.

    .venv/bin/python examples/vector_databases.py                                   # LanceDB in a temp folder
    .venv/bin/python examples/vector_databases.py --to lancedb:///tmp/vectors?table=faq
    .venv/bin/python examples/vector_databases.py --to postgresql://me@127.0.0.1:5432/app?table=faq

Needs ``pip install 'sentencekit[lancedb]'`` or ``'sentencekit[pgvector]'`` (and a PostgreSQL server with the
pgvector extension: ``sudo bash scripts/install_pgvector.sh`` on Debian). It embeds the bundled sample corpus
(200 support articles, each with a title) into an index, writes it to the table, reopens the table with the same
model and prints each query's best hits from the database next to the index's own: the same documents, the same
scores. Opening the table with another model is refused (``IndexMismatchError``), as the index refuses it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CORPUS = Path(__file__).resolve().parent.parent / "src" / "sentencekit" / "data" / "sample_corpus.jsonl"
QUERIES = ["How do I get a refund?", "my parcel never arrived", "change the email on my account"]


def main(argv: list[str] | None = None) -> list[list[dict]]:
    """Run the example; returns the database's hits per query."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--to", default=None, help="store location (default: LanceDB in a temporary folder)")
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args(argv)

    from sentencekit import SentenceTransformer
    from sentencekit.integrations.vectordb import export_index, open_store
    from sentencekit.search.corpus_index import build_index

    model = SentenceTransformer(args.model, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        index, _ = build_index(CORPUS, Path(tmp) / "index", model, lexical=False)
        to = args.to or f"lancedb://{tmp}/lance?table=sample"
        export_index(index, to, overwrite=True)               # vectors, texts, metadata + the model record
        store = open_store(to, model)                         # checks the model's fingerprint first
        results = store.search(QUERIES, top_k=args.top_k)     # the database's own vector search
        for query, hits, own in zip(QUERIES, results, index.search(QUERIES, top_k=args.top_k)):
            print(f"\n{query}")
            for hit, same in zip(hits, own):
                print(f"  {hit['score']:.4f} {hit['id']:<10} (index: {same['score']:.4f} {same['id']:<10}) "
                      f"{hit.get('title') or hit['text'][:60]}")
        getattr(store, "close", lambda: None)()
    return results


if __name__ == "__main__":
    main()
