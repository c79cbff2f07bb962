"""Exporting an :class:`~sentencekit.search.index.EmbeddingIndex` to a vector database, and searching it there.

Two stores, each behind its own extra (nothing here imports them until used):

* ``lancedb://PATH[?table=NAME]``: LanceDB, embedded (a folder) — ``pip install 'sentencekit[lancedb]'``;
  see :mod:`~sentencekit.integrations.vectordb.lancedb_store`.
* ``postgresql://USER[:PASSWORD]@HOST:PORT/DB[?table=NAME]``: PostgreSQL with the pgvector extension —
  ``pip install 'sentencekit[pgvector]'``; see :mod:`~sentencekit.integrations.vectordb.pgvector_store`.

The table keeps every stored vector (float32, normalized when the index is) with its document's id, text,
title, metadata and chunk span, and a record of the model (fingerprint), prompts, dimension, normalization and
similarity (:mod:`~sentencekit.integrations.vectordb.records`). Opening it with another model raises
:class:`~sentencekit.search.index_errors.IndexMismatchError`, as ``EmbeddingIndex.open`` does; searches embed the
query as the index would and return its hits' shape. The table name defaults to ``sentencekit``.

>>> from sentencekit import SentenceTransformer                                   # doctest: +SKIP
>>> from sentencekit.search import EmbeddingIndex                                 # doctest: +SKIP
>>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")         # doctest: +SKIP
>>> index = EmbeddingIndex.open("faq-index", model)                               # doctest: +SKIP
>>> export_index(index, "lancedb:///tmp/vectors?table=faq")                       # doctest: +SKIP
LanceDBStore('lancedb:///tmp/vectors?table=faq', documents=2, dimension=384, model='...')
>>> open_store("lancedb:///tmp/vectors?table=faq", model).search("refund?", top_k=1)[0]["id"]  # doctest: +SKIP
'refund'
>>> parse_location("lancedb://vectors?table=faq")
('lancedb', 'vectors', 'faq', 'lancedb://vectors?table=faq')
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_TABLE = "sentencekit"
SCHEMES = {"lancedb": "lancedb", "postgresql": "postgresql", "postgres": "postgresql"}
EXAMPLES = "lancedb://PATH[?table=NAME] or postgresql://USER@HOST:PORT/DB[?table=NAME]"


def parse_location(location: str, table: str | None = None) -> tuple[str, str, str, str]:
    """Split a store location into ``(kind, target, table, where)``: ``kind`` ``"lancedb"`` or
    ``"postgresql"``; ``target`` the LanceDB folder or the PostgreSQL connection URL (without ``table``);
    ``table`` from ``?table=`` (else the ``table`` argument, else ``"sentencekit"``); ``where`` the location
    for messages (any password masked). Raises ``ValueError`` for an unknown scheme or a location without a
    path / database.

    >>> parse_location("postgresql://me:secret@127.0.0.1:5432/app?table=faq")
    ('postgresql', 'postgresql://me:secret@127.0.0.1:5432/app', 'faq', 'postgresql://me:***@127.0.0.1:5432/app?table=faq')
    >>> parse_location("s3://bucket/x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Unknown vector database location 's3://bucket/x': ...
    """
    if not isinstance(location, str) or "://" not in location:
        raise ValueError(f"Vector database location {location!r} has no scheme; use {EXAMPLES}.")
    scheme = location.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown vector database location {location!r}: the scheme {scheme + '://'!r} is not "
                         f"supported; use {EXAMPLES}.")
    kind = SCHEMES[scheme]
    rest, _, query = location.split("://", 1)[1].partition("?")
    params = parse_qsl(query, keep_blank_values=True)
    tables = [value for key, value in params if key == "table"]
    chosen = tables[-1] if tables else (table or DEFAULT_TABLE)
    if not chosen:
        raise ValueError(f"Empty table name in {location!r}; write ?table=NAME or leave it out (default "
                         f"{DEFAULT_TABLE!r}).")
    others = [(key, value) for key, value in params if key != "table"]
    if kind == "lancedb":
        if not rest:
            raise ValueError(f"{location!r} names no folder; write lancedb://PATH (relative) or lancedb:///PATH "
                             "(absolute).")
        if others:
            raise ValueError(f"{location!r}: LanceDB locations take only ?table=NAME, not "
                             f"{', '.join(key for key, _ in others)}.")
        return kind, rest, chosen, f"lancedb://{rest}?table={chosen}"
    parts = urlsplit(f"postgresql://{rest}")
    if not parts.hostname and not parts.path.strip("/") and not others:
        raise ValueError(f"{location!r} names no server or database; write postgresql://USER@HOST:PORT/DB.")
    target = urlunsplit(parts._replace(query=urlencode(others)))
    shown = parts.netloc
    if parts.password is not None:
        shown = shown.replace(f":{parts.password}@", ":***@", 1)
    where = urlunsplit(parts._replace(netloc=shown, query=urlencode(others + [("table", chosen)])))
    return kind, target, chosen, where


def export_index(index: Any, to: str, table: str | None = None, *, overwrite: bool = False,
                 vector_index: str | None = None) -> Any:
    """Write ``index`` (an :class:`EmbeddingIndex`) to the store at ``to`` (see :func:`parse_location`) and
    return the store, opened with the index's model (``None`` when the index was opened without one: the
    table can still be written, and searched once opened with the model). ``overwrite`` replaces an existing
    table atomically; without it an existing table raises ``FileExistsError``. ``vector_index``
    (PostgreSQL only): ``"hnsw"`` or ``"ivfflat"`` also builds that approximate index; LanceDB's is built
    with ``store.create_vector_index()``. Raises ``ValueError`` for a bad location, ``ImportError`` (naming
    the ``pip install``) when the store's extra is missing.

    >>> store = export_index(index, "postgresql://me@127.0.0.1:5432/app?table=faq")  # doctest: +SKIP
    >>> len(store)  # doctest: +SKIP
    2
    """
    kind, target, name, where = parse_location(to, table)
    if kind == "lancedb":
        if vector_index is not None:
            raise ValueError("vector_index is for PostgreSQL; build LanceDB's approximate index with "
                             "store.create_vector_index() after the export.")
        from sentencekit.integrations.vectordb.lancedb_store import LanceDBStore

        return LanceDBStore.write(index, target, name, overwrite=overwrite)
    from sentencekit.integrations.vectordb.pgvector_store import PgVectorStore

    return PgVectorStore.write(index, target, name, where=where, overwrite=overwrite, vector_index=vector_index)


def open_store(location: str, model: Any = None, table: str | None = None) -> Any:
    """Open the exported table at ``location`` (see :func:`parse_location`). ``model`` must be the model it
    was exported with, else :class:`~sentencekit.search.index_errors.IndexMismatchError` (raised here, before any
    search); ``None`` opens it for inspection only (``len``, ``record``). Raises ``IndexFormatError`` for a
    missing table or one sentencekit did not write.

    >>> store = open_store("lancedb:///tmp/vectors?table=faq", model)  # doctest: +SKIP
    >>> store.search(["refund?", "shipping?"], top_k=2)  # doctest: +SKIP
    [[{'id': 'refund', ...}, ...], [...]]
    """
    kind, target, name, where = parse_location(location, table)
    if kind == "lancedb":
        from sentencekit.integrations.vectordb.lancedb_store import LanceDBStore

        return LanceDBStore.open(target, name, model)
    from sentencekit.integrations.vectordb.pgvector_store import PgVectorStore

    return PgVectorStore.open(target, name, model, where=where)


__all__ = ["DEFAULT_TABLE", "export_index", "open_store", "parse_location"]
