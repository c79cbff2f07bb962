"""``sentencekit index export``: copy a stored index into a vector database (LanceDB or PostgreSQL +
pgvector). Standard library only at import; the database clients load inside the command.

    sentencekit index export faq-index --to lancedb:///data/vectors?table=faq
    sentencekit index export faq-index --to postgresql://me@127.0.0.1:5432/app?table=faq --vector-index hnsw
"""

from __future__ import annotations

import argparse

DESCRIPTION = ("Write every stored vector of the index INDEX (float32, as stored), with its document's id, text, "
               "title, metadata and chunk span, to a table of a vector database, with a record of the model "
               "(fingerprint), prompts, dimension and normalization, so that the table is searched only with the "
               "index's model (sentencekit.integrations.vectordb.open_store). TO is lancedb://PATH[?table=NAME] "
               "(LanceDB, a folder; pip install 'sentencekit[lancedb]') or postgresql://USER@HOST:PORT/DB[?table=NAME] "
               "(PostgreSQL with the pgvector extension; pip install 'sentencekit[pgvector]'). The table name "
               "defaults to 'sentencekit'. The write is atomic: an existing table is replaced only with --overwrite, "
               "and a failed export leaves it as it was.")


def add_export_parser(index_sub: argparse._SubParsersAction) -> None:
    """Add the ``export`` action to the ``index`` command group."""
    p = index_sub.add_parser("export", help="write an index to LanceDB or PostgreSQL + pgvector",
                             description=DESCRIPTION)
    p.add_argument("index", help="index folder")
    p.add_argument("--to", required=True, metavar="URL",
                   help="lancedb://PATH[?table=NAME] or postgresql://USER@HOST:PORT/DB[?table=NAME]")
    p.add_argument("--table", default=None, help="table name, when the URL has no ?table= (default: sentencekit)")
    p.add_argument("--overwrite", action="store_true", help="replace the table if it exists")
    p.add_argument("--vector-index", choices=["hnsw", "ivfflat"], default=None,
                   help="PostgreSQL: also build this pgvector index (searches become approximate)")
    p.set_defaults(func=cmd_index_export)


def cmd_index_export(args: argparse.Namespace) -> int:
    """Run ``sentencekit index export``."""
    from sentencekit.integrations.vectordb import export_index, parse_location
    from sentencekit.search.index import EmbeddingIndex

    parse_location(args.to, args.table)  # a bad URL fails before the index is read
    index = EmbeddingIndex.open(args.index)  # no model: the vectors are copied as stored
    store = export_index(index, args.to, args.table, overwrite=args.overwrite, vector_index=args.vector_index)
    try:
        print(f"{args.index}: {store.record['documents']} documents ({len(store)} vectors, "
              f"{store.record['dimension']} dimensions) -> {store.where}")
    finally:
        getattr(store, "close", lambda: None)()
    return 0
