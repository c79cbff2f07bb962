"""What the LanceDB and pgvector stores share: importing the database client (or saying what to install),
opening with the model check, embedding queries with the recorded settings, and turning the database's nearest
rows into :meth:`EmbeddingIndex.search`'s hits (one per document, best first).

A subclass implements ``_nearest(vector, limit)`` (the database's own vector search) and ``__len__``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from sentencekit.integrations.vectordb.records import check_model, require_model, row_document
from sentencekit.search.model_check import embed
from sentencekit.search.results import document_hit


def import_client(packages: Sequence[str], database: str, needs: str, install: str) -> Any:
    """Import a store's client ``packages`` and return the first, or raise an ``ImportError`` saying that
    exporting to / searching ``database`` needs ``needs`` and naming the ``install`` command."""
    try:
        return [importlib.import_module(name) for name in packages][0]
    except ImportError as exc:
        raise ImportError(f"Exporting to / searching {database} needs {needs}: {install} "
                          f"({type(exc).__name__}: {exc})") from exc


class VectorTableStore:
    """A table of exported vectors in a vector database, searched like the index it came from.

    Use :func:`sentencekit.integrations.vectordb.open_store` (or a subclass's ``open``).
    ``record``: the table's sentencekit record (model, prompts, dimension, normalization, similarity).
    """

    #: the URL scheme of the subclass's locations
    scheme = ""

    def __init__(self, where: str, record: dict[str, Any], model: Any) -> None:
        check_model(record, model, where)  # first: nothing is searched with a model the vectors do not come from
        self.where = where
        self.record = record
        self.model = model

    def __len__(self) -> int:
        """Number of rows (vectors) in the table."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.where!r}, documents={self.record.get('documents')}, "
                f"dimension={self.record['dimension']}, model={self.record['model'].get('name_or_path')!r})")

    def _nearest(self, vector: np.ndarray, limit: int) -> list[tuple[dict[str, Any], float]]:
        """The database's ``limit`` nearest rows to ``vector`` (float32 ``[dimension]``), best first, as
        ``(row without its vector, similarity score)``."""
        raise NotImplementedError

    def search(self, query: str | Sequence[str], top_k: int = 10, *,
               batch_size: int = 32) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """The ``top_k`` most similar documents, as :meth:`EmbeddingIndex.search` returns them: for one query
        a list of hits ``{"id", "score", "text", "metadata"}`` (plus ``"title"`` / ``"field"`` and ``"chunk"``
        for documents with a title or chunks), for a list of queries one list per query. Queries are embedded
        with the recorded query prompt, dimension and normalization (as ``encode_query``); the database ranks
        (an exact scan unless the table has an approximate index). Raises ``IndexReadOnlyError`` when the store
        was opened without a model, ``ValueError`` for a bad ``top_k``.

        >>> store = open_store("lancedb:///tmp/vectors?table=faq", model)  # doctest: +SKIP
        >>> store.search("how long until I get my money back?", top_k=1)[0]["id"]  # doctest: +SKIP
        'refund'
        """
        model = require_model(self.model, self.where)
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k <= 0:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        single = isinstance(query, str)
        queries = [query] if single else list(query)
        if not all(isinstance(q, str) for q in queries):
            raise TypeError("query must be a string or a list of strings")
        vectors = embed(model, self.record, queries, query=True, batch_size=batch_size) if queries else []
        results = [self._top_documents(vector, top_k) for vector in vectors]
        return results[0] if single else results

    def _top_documents(self, vector: np.ndarray, k: int) -> list[dict[str, Any]]:
        """Best row per document until ``k`` documents; asks the database for more rows while documents with
        several vectors (titles, chunks) take several of the nearest rows."""
        total = len(self)
        several = int(self.record.get("vectors") or 0) > int(self.record.get("documents") or 0)
        limit = min(total, k * (2 if several else 1))
        hits: list[dict[str, Any]] = []
        while limit > 0:
            seen: set[str] = set()
            hits = []
            for row, score in self._nearest(vector, limit):
                if row["id"] not in seen:
                    seen.add(row["id"])
                    hits.append(document_hit(row_document(row), int(row["part"]), score))
                    if len(hits) == k:
                        return hits
            if limit >= total:
                break
            limit = min(total, limit * 4)
        return hits
