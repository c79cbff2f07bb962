"""An exported index as a PostgreSQL table with a pgvector ``vector`` column. Needs ``pip install
'sentencekit[pgvector]'`` (psycopg 3 and pgvector's Python helpers) and a server with the ``vector`` extension.

Layout: the table itself (one row per vector; ``PRIMARY KEY (id, part)``; ``metadata`` is ``jsonb``, ``vector``
is ``vector(dimension)``, float32 as the index stores it) and the sentencekit record as a ``jsonb`` row of the
companion table ``sentencekit_vector_tables (table_schema, table_name, record)``. The record lives in a table,
not in a ``COMMENT``: it is written in the same transaction as the rows, survives ``pg_dump`` / restore, and
any client can query it (``SELECT record FROM sentencekit_vector_tables``).

Writes are one transaction (PostgreSQL's DDL is transactional): the table is created (or, with
``overwrite=True``, dropped and created again), filled by a binary ``COPY``, the record written, an optional
HNSW / IVFFlat index built, then committed; a failure at any point rolls all of it back, so readers see the old
table or the new one, never a half one.

Search orders by pgvector's ``<#>`` (negative inner product; score = -distance) for every index, and an HNSW /
IVFFlat index is built with ``vector_ip_ops``: a cosine index stores normalized vectors and queries are
normalized, so the inner product is its cosine score. ``<=>`` (cosine distance) is not used: it is NaN for an
all-zero vector (such rows came last, scored NaN), while the index scores them 0.0. Exact (a sequential scan)
unless the table has an HNSW / IVFFlat index.

>>> PgVectorStore.write(index, "postgresql://me@127.0.0.1:5432/app", "faq")  # doctest: +SKIP
>>> PgVectorStore.open("postgresql://me@127.0.0.1:5432/app", "faq", model).search("refund?", top_k=1)  # doctest: +SKIP
[{'id': 'refund', 'score': 0.61, 'text': 'Refunds take 5 days.', 'metadata': None}]
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from sentencekit.integrations.vectordb.records import COLUMNS, check_record, row_values, table_record
from sentencekit.integrations.vectordb.table_store import VectorTableStore, import_client
from sentencekit.search.index_errors import IndexFormatError

RECORDS_TABLE = "sentencekit_vector_tables"
INSTALL = "pip install 'sentencekit[pgvector]'"
VECTOR_INDEXES = ("hnsw", "ivfflat")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_TYPES = {"id": "text NOT NULL", "part": "integer NOT NULL", "text": "text NOT NULL", "title": "text",
          "metadata": "jsonb", "modality": "text", "chunk_index": "integer", "chunk_start": "integer",
          "chunk_end": "integer"}
_COPY_TYPES = {"id": "text", "part": "int4", "text": "text", "title": "text", "metadata": "jsonb", "modality": "text",
               "chunk_index": "int4", "chunk_start": "int4", "chunk_end": "int4", "vector": "vector"}


def import_psycopg() -> Any:
    """``psycopg`` (with pgvector's helpers importable), or an ``ImportError`` naming the install command."""
    return import_client(("psycopg", "pgvector.psycopg"), "PostgreSQL", "psycopg 3 and pgvector", INSTALL)


def check_table_name(table: str) -> str:
    """A table name sentencekit writes: a plain identifier (letters, digits, ``_``; at most 63 characters).

    >>> check_table_name("faq_v2")
    'faq_v2'
    >>> check_table_name("faq; drop table x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Table name 'faq; drop table x' is not a plain PostgreSQL identifier: ...
    """
    if not isinstance(table, str) or not _NAME.match(table):
        raise ValueError(f"Table name {table!r} is not a plain PostgreSQL identifier: use letters, digits and _ "
                         "(not starting with a digit, at most 63 characters), e.g. ?table=faq_vectors.")
    return table


def connect(dsn: str, where: str) -> Any:
    """A psycopg connection to ``dsn`` with pgvector's types registered. Raises ``ConnectionError`` when the
    server cannot be reached and ``ImportError`` when the database lacks the ``vector`` extension and it cannot
    be created, each saying what to do."""
    psycopg = import_psycopg()
    from pgvector.psycopg import register_vector

    try:
        conn = psycopg.connect(dsn, autocommit=True)  # transactions are explicit: conn.transaction()
    except psycopg.OperationalError as exc:
        raise ConnectionError(f"Cannot connect to {where}: {str(exc).strip()}. Check the host, port, user and "
                              "database in the URL (and that the server is running).") from exc
    try:
        if conn.execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'vector'").fetchone() is None:
            conn.execute("CREATE EXTENSION vector")
        register_vector(conn)
    except psycopg.Error as exc:
        conn.close()
        raise ImportError(f"The database of {where} has no pgvector extension and it could not be created "
                          f"({str(exc).strip()}). Install pgvector on the server (Debian: "
                          "scripts/install_pgvector.sh) and run `CREATE EXTENSION vector;` in that database as a "
                          "superuser.") from exc
    return conn


class PgVectorStore(VectorTableStore):
    """An exported index in a PostgreSQL + pgvector table, searched with pgvector's distance operators.

    >>> with PgVectorStore.open("postgresql://me@127.0.0.1/app", "faq", model) as store:  # doctest: +SKIP
    ...     store.search("refund?", top_k=1)[0]["id"]
    'refund'
    """

    scheme = "postgresql"

    def __init__(self, conn: Any, table: str, where: str, record: dict[str, Any], model: Any) -> None:
        try:
            super().__init__(where, record, model)
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        self.table = table

    @classmethod
    def write(cls, index: Any, dsn: str, table: str, *, where: str | None = None, overwrite: bool = False,
              vector_index: str | None = None, batch_size: int = 4096) -> PgVectorStore:
        """Write every live vector of ``index`` (an :class:`EmbeddingIndex`, float32 as stored, normalized when
        the index is) with its document's id, text, title, metadata (``jsonb``) and chunk span, and the record,
        to ``table`` in the database of ``dsn``, in one transaction. ``vector_index``: ``"hnsw"`` or
        ``"ivfflat"`` also builds that pgvector index (searches become approximate). Returns the store, opened
        with the index's model. Raises ``FileExistsError`` when the table exists and not ``overwrite``,
        ``ValueError`` for a bad table name or ``vector_index``.

        >>> PgVectorStore.write(index, "postgresql://me@127.0.0.1/app", "faq", vector_index="hnsw")  # doctest: +SKIP
        PgVectorStore('postgresql://me@127.0.0.1/app?table=faq', documents=2, dimension=384, model='...')
        """
        from psycopg import sql
        from psycopg.types.json import Jsonb

        check_table_name(table)
        if vector_index not in (None, *VECTOR_INDEXES):
            raise ValueError(f"vector_index must be None, 'hnsw' or 'ivfflat', got {vector_index!r}")
        where = where or f"{dsn}?table={table}"
        record = table_record(index, where)
        dimension = int(record["dimension"])
        conn = connect(dsn, where)
        name = sql.Identifier(table)
        try:
            with conn.transaction():
                conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (table_schema text NOT NULL, table_name text "
                                     "NOT NULL, record jsonb NOT NULL, PRIMARY KEY (table_schema, table_name))")
                             .format(sql.Identifier(RECORDS_TABLE)))
                if _exists(conn, table):
                    if not overwrite:
                        raise FileExistsError(f"{where} already exists; pass overwrite=True (`--overwrite` on the "
                                              "command line) to replace it, or choose another table (?table=NAME).")
                    conn.execute(sql.SQL("DROP TABLE {}").format(name))
                columns = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_TYPES[c])) for c in COLUMNS[:-1]]
                columns.append(sql.SQL("vector vector({}) NOT NULL").format(sql.Literal(dimension)))
                conn.execute(sql.SQL("CREATE TABLE {} ({}, PRIMARY KEY (id, part))")
                             .format(name, sql.SQL(", ").join(columns)))
                copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                    name, sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS))
                with conn.cursor() as cur, cur.copy(copy_sql) as copy:
                    copy.set_types([_COPY_TYPES[c] for c in COLUMNS])
                    for docs, parts, vectors in index.iter_vectors(batch_size):
                        for doc, part, vector in zip(docs, parts.tolist(), vectors):
                            row = row_values(doc, part)
                            row["metadata"] = None if doc.get("metadata") is None else Jsonb(doc["metadata"])
                            row["vector"] = np.asarray(vector, np.float32)
                            copy.write_row([row[c] for c in COLUMNS])
                conn.execute(sql.SQL("INSERT INTO {} VALUES (current_schema(), %s, %s) ON CONFLICT (table_schema, "
                                     "table_name) DO UPDATE SET record = EXCLUDED.record")
                             .format(sql.Identifier(RECORDS_TABLE)), (table, Jsonb(record)))
                if vector_index is not None:
                    conn.execute(sql.SQL("CREATE INDEX ON {} USING {} (vector vector_ip_ops)")
                                 .format(name, sql.SQL(vector_index)))
        except BaseException:
            conn.close()
            raise
        return cls(conn, table, where, record, index.model)

    @classmethod
    def open(cls, dsn: str, table: str, model: Any = None, *, where: str | None = None) -> PgVectorStore:
        """Open ``table`` in the database of ``dsn``. ``model`` must be the model it was exported with (else
        ``IndexMismatchError``, before anything is searched); ``None`` opens it for inspection only. Raises
        ``IndexFormatError`` for a missing table or one without a sentencekit record.

        >>> PgVectorStore.open("postgresql://me@127.0.0.1/app", "faq", model).record["dimension"]  # doctest: +SKIP
        384
        """
        from psycopg import sql

        check_table_name(table)
        where = where or f"{dsn}?table={table}"
        conn = connect(dsn, where)
        try:
            if not _exists(conn, table):
                raise IndexFormatError(f"No table {table!r} in the database of {where}; export an index there first: "
                                       f"`sentencekit index export INDEX_DIR --to {where}`.")
            record = None
            if _exists(conn, RECORDS_TABLE):
                found = conn.execute(sql.SQL("SELECT record FROM {} WHERE table_schema = current_schema() AND "
                                             "table_name = %s").format(sql.Identifier(RECORDS_TABLE)),
                                     (table,)).fetchone()
                record = found[0] if found else None
            record = check_record(json.loads(record) if isinstance(record, str) else record, where)
        except BaseException:
            conn.close()
            raise
        return cls(conn, table, where, record, model)

    def __len__(self) -> int:
        """Number of rows (vectors) in the table."""
        from psycopg import sql

        with self.conn.transaction():
            return int(self.conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(self.table)))
                       .fetchone()[0])

    def close(self) -> None:
        """Close the database connection."""
        self.conn.close()

    def __enter__(self) -> PgVectorStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _nearest(self, vector: np.ndarray, limit: int) -> list[tuple[dict[str, Any], float]]:
        from psycopg import sql
        from psycopg.rows import dict_row

        query = sql.SQL("SELECT {}, vector <#> %(q)s AS distance FROM {} ORDER BY vector <#> %(q)s LIMIT %(n)s").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS[:-1]), sql.Identifier(self.table))
        with self.conn.transaction(), self.conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(query, {"q": np.asarray(vector, np.float32), "n": int(limit)}).fetchall()
        return [(row, -row.pop("distance")) for row in rows]


def _exists(conn: Any, table: str) -> bool:
    """Whether ``table`` exists in the connection's current schema."""
    found = conn.execute("SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = %s",
                         (table,)).fetchone()
    return found is not None
