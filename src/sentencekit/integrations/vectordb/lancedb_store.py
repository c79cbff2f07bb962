"""An exported index as a LanceDB table (embedded: a folder, no server). Needs ``pip install
'sentencekit[lancedb]'``.

The sentencekit record (:mod:`~sentencekit.integrations.vectordb.records`) is the Arrow schema's metadata
under the key ``b"sentencekit"``: Lance stores the schema with every table version, so the record travels with
the table (copies, ``clone_table``) and cannot go out of step with the rows. Vectors are a ``fixed_size_list
<float32>[dimension]`` column ``vector``; metadata is JSON text.

Writes: a new table is written in one ``create_table`` call (removed again if it fails, so no half table
remains under its name); ``overwrite=True`` writes a new version of an existing table, which Lance commits
only once every row is written (a failure leaves the previous version).

>>> store = LanceDBStore.write(index, "/tmp/vectors", "faq")  # doctest: +SKIP
>>> LanceDBStore.open("/tmp/vectors", "faq", model).search("refund?", top_k=1)[0]["id"]  # doctest: +SKIP
'refund'
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from sentencekit.integrations.vectordb.records import COLUMNS, check_record, row_values, table_record
from sentencekit.integrations.vectordb.table_store import VectorTableStore, import_client
from sentencekit.search.index_errors import IndexFormatError

RECORD_KEY = b"sentencekit"
INSTALL = "pip install 'sentencekit[lancedb]'"
#: LanceDB's distance for every table: ``dot`` (1 - inner product). Cosine tables hold normalized vectors, so
#: it ranks and scores as the index does, all-zero vectors included (score 0.0; ``cosine`` makes them NaN).
METRIC = "dot"


def import_lancedb() -> Any:
    """``lancedb`` (and pyarrow), or an ``ImportError`` naming the install command."""
    return import_client(("lancedb", "pyarrow"), "LanceDB", "the lancedb package", INSTALL)


def _location(path: str | os.PathLike, table: str) -> str:
    return f"lancedb://{os.fspath(path)}?table={table}"


def _schema(dimension: int, record: dict[str, Any] | None) -> Any:
    import pyarrow as pa

    types = {"id": pa.string(), "part": pa.int32(), "text": pa.string(), "title": pa.string(),
             "metadata": pa.string(), "modality": pa.string(), "chunk_index": pa.int32(), "chunk_start": pa.int32(),
             "chunk_end": pa.int32(), "vector": pa.list_(pa.float32(), dimension)}
    metadata = {RECORD_KEY: json.dumps(record).encode()} if record is not None else None
    return pa.schema([pa.field(name, types[name], nullable=name not in ("id", "part", "text", "vector"))
                      for name in COLUMNS], metadata=metadata)


class LanceDBStore(VectorTableStore):
    """An exported index in a LanceDB table, searched with LanceDB's vector search by ``dot`` distance for
    every index (score = 1 - distance = the inner product, the index's own score). A cosine index stores
    normalized vectors and queries are normalized, so the inner product is its cosine; LanceDB's ``cosine``
    distance is not used because it is NaN for an all-zero vector, and such rows were dropped, while the index
    scores them 0.0. Exact (a scan) unless :meth:`create_vector_index` built an approximate index.

    >>> store = LanceDBStore.open("/tmp/vectors", "faq", model)  # doctest: +SKIP
    >>> len(store), store.record["dimension"]  # doctest: +SKIP
    (2, 384)
    """

    scheme = "lancedb"

    def __init__(self, table: Any, where: str, record: dict[str, Any], model: Any) -> None:
        super().__init__(where, record, model)
        self.table = table

    @classmethod
    def write(cls, index: Any, path: str | os.PathLike, table: str, *, overwrite: bool = False,
              batch_size: int = 4096) -> LanceDBStore:
        """Write every live vector of ``index`` (an :class:`EmbeddingIndex`, as stored: float32, normalized
        when the index is) with its document's id, text, title, metadata and chunk span, and the record, to
        the table ``table`` of the LanceDB database at ``path`` (a folder; created if missing). Returns the
        store, opened with the index's model. Raises ``FileExistsError`` when the table exists and not
        ``overwrite``.

        >>> LanceDBStore.write(index, "/tmp/vectors", "faq", overwrite=True)  # doctest: +SKIP
        LanceDBStore('lancedb:///tmp/vectors?table=faq', documents=2, dimension=384, model='...')
        """
        lancedb = import_lancedb()
        import pyarrow as pa

        where = _location(path, table)
        record = table_record(index, where)
        schema = _schema(int(record["dimension"]), record)
        db = lancedb.connect(os.fspath(path))
        existed = _listed(db, table)
        if existed and not overwrite:
            if _opens(db, table):
                raise FileExistsError(f"{where} already exists; pass overwrite=True (`--overwrite` on the command "
                                      "line) to replace it, or choose another table (?table=NAME).")
            db.drop_table(table)  # the leftover of a write that was killed: it never committed a version
            existed = False

        def batches() -> Any:
            for docs, parts, vectors in index.iter_vectors(batch_size):
                rows = [row_values(doc, part) for doc, part in zip(docs, parts.tolist())]
                columns = {name: [row[name] for row in rows] for name in COLUMNS if name != "vector"}
                flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
                columns["vector"] = pa.FixedSizeListArray.from_arrays(flat, int(record["dimension"]))
                yield pa.record_batch([pa.array(columns[f.name], f.type) for f in schema], schema=schema)

        reader = pa.RecordBatchReader.from_batches(schema, batches())
        try:
            handle = db.create_table(table, reader, schema=schema, mode="overwrite" if existed else "create")
        except BaseException:
            if not existed and _listed(db, table):
                db.drop_table(table)
            raise
        return cls(handle, where, record, index.model)

    @classmethod
    def open(cls, path: str | os.PathLike, table: str, model: Any = None) -> LanceDBStore:
        """Open the table ``table`` of the LanceDB database at ``path``. ``model`` must be the model the table
        was exported with (else ``IndexMismatchError``, before anything is searched); ``None`` opens it for
        inspection only. Raises ``IndexFormatError`` for a missing table or one without a sentencekit record.

        >>> LanceDBStore.open("/tmp/vectors", "faq", model).search("refund?", top_k=1)  # doctest: +SKIP
        [{'id': 'refund', 'score': 0.61, 'text': 'Refunds take 5 days.', 'metadata': None}]
        """
        lancedb = import_lancedb()
        where = _location(path, table)
        if not os.path.isdir(path):
            raise IndexFormatError(f"No LanceDB database at {os.fspath(path)} (no such folder); export an index "
                                   f"there first: `sentencekit index export INDEX_DIR --to {where}`.")
        db = lancedb.connect(os.fspath(path))
        if not _listed(db, table) or not _opens(db, table):
            raise IndexFormatError(f"No table {table!r} in the LanceDB database at {os.fspath(path)}; export an "
                                   f"index there first: `sentencekit index export INDEX_DIR --to {where}`.")
        handle = db.open_table(table)
        record = check_record((handle.schema.metadata or {}).get(RECORD_KEY), where)
        return cls(handle, where, record, model)

    def __len__(self) -> int:
        """Number of rows (vectors) in the table."""
        return int(self.table.count_rows())

    def create_vector_index(self, **options: Any) -> None:
        """Build LanceDB's approximate vector index (IVF-PQ by default; ``options`` go to
        ``table.create_index``, e.g. ``num_partitions``, ``num_sub_vectors``, ``index_type="IVF_HNSW_SQ"``).
        Searches then become approximate. LanceDB needs at least 256 rows to train one.

        >>> store.create_vector_index(num_partitions=16, num_sub_vectors=16)  # doctest: +SKIP
        """
        self.table.create_index(metric=METRIC, vector_column_name="vector", **options)

    def _nearest(self, vector: np.ndarray, limit: int) -> list[tuple[dict[str, Any], float]]:
        found = (self.table.search(np.asarray(vector, np.float32), vector_column_name="vector")
                 .distance_type(METRIC).select([*COLUMNS[:-1], "_distance"]).limit(limit)
                 .to_arrow().to_pylist())
        return [(row, 1.0 - float(row.pop("_distance"))) for row in found]


def _listed(db: Any, table: str) -> bool:
    """Whether the database lists ``table`` (a folder for it exists, committed or not)."""
    token = None
    while True:
        page = db.list_tables(page_token=token)
        if table in page.tables:
            return True
        token = page.page_token
        if not token:
            return False


def _opens(db: Any, table: str) -> bool:
    """Whether ``table`` has a committed version (a killed first write leaves a folder without one)."""
    try:
        db.open_table(table)
    except (ValueError, OSError, RuntimeError):
        return False
    return True
