"""The record a vector-database table exported from an :class:`~sentencekit.search.index.EmbeddingIndex`
keeps beside its rows, the check that refuses another model, and the columns of its rows.

The record holds what decides the stored vectors (the same fields an index's ``manifest.json`` holds, from
:func:`sentencekit.search.model_check.index_settings`): the model (name, class, fingerprint), the document and
query prompts, the dimension, ``normalize`` and the similarity, plus where and when it was exported. A table is
opened only with a model whose fingerprint and dimension match (:func:`check_model`, the same check
``EmbeddingIndex.open`` runs), and queries are embedded with the recorded query prompt and normalization.

One row per stored vector (a document with a title or chunks has several), with the columns of :data:`COLUMNS`.

>>> record = {"format": RECORD_FORMAT, "format_version": RECORD_VERSION, "model": {"fingerprint": "ab"},
...           "dimension": 384, "normalize": True, "similarity_fn_name": "cosine", "query_prompt": ""}
>>> check_record(record, "lancedb:///tmp/db?table=faq")["dimension"]
384
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any

from sentencekit.search.index_errors import IndexFormatError, IndexReadOnlyError
from sentencekit.search.model_check import check_bi_encoder, mismatch_error, mismatches

RECORD_FORMAT = "sentencekit-vector-table"
RECORD_VERSION = 1
#: the manifest fields of an index that the record copies (what fixes how texts are embedded)
SETTINGS = ("model", "dimension", "truncate_dim", "normalize", "similarity_fn_name", "prompt_name",
            "document_prompt", "query_prompt_name", "query_prompt")
#: the row columns both stores write: the document id, the vector's number within its document (see
#: EmbeddingIndex.iter_vectors), the document's text, title, JSON metadata and modality, the vector's chunk
#: span (chunk number, start, end; null for a whole text or a title) and the vector itself
COLUMNS = ("id", "part", "text", "title", "metadata", "modality", "chunk_index", "chunk_start", "chunk_end", "vector")
REQUIRED = ("model", "dimension", "normalize", "similarity_fn_name", "query_prompt")


def table_record(index: Any, where: str) -> dict[str, Any]:
    """The record of a table exported from ``index`` to ``where`` (a location string, for the record only).

    >>> table_record(index, "lancedb:///tmp/db?table=faq")["model"]["fingerprint"]  # doctest: +SKIP
    '5f1c...'
    """
    from sentencekit import __version__

    manifest = index.manifest
    counts = manifest.get("counts") or {}
    return {"format": RECORD_FORMAT, "format_version": RECORD_VERSION,
            **{key: manifest.get(key) for key in SETTINGS},
            "documents": int(counts.get("documents", len(index))), "vectors": int(counts.get("vectors", 0)),
            "exported_from": os.fspath(os.path.abspath(index.path)), "exported_to": where,
            "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "exported_with": f"sentencekit {__version__}", "index_created_with": manifest.get("created_with")}


def check_record(record: Any, where: str) -> dict[str, Any]:
    """Refuse a record that is missing, damaged, or of another format version (:class:`IndexFormatError`).

    >>> check_record(None, "postgresql://db?table=faq")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sentencekit.search.index_errors.IndexFormatError: postgresql://db?table=faq has no sentencekit record: ...
    """
    if isinstance(record, (str, bytes)):
        try:
            record = json.loads(record)
        except ValueError:
            record = None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise IndexFormatError(f"{where} has no sentencekit record: it was not written by `sentencekit index "
                               "export` (or its record was removed). Export the index again with `sentencekit "
                               f"index export INDEX_DIR --to {where}`.")
    if record.get("format_version") != RECORD_VERSION:
        raise IndexFormatError(f"{where} was exported with record format version {record.get('format_version')}; "
                               f"this sentencekit reads version {RECORD_VERSION}. Upgrade sentencekit or export "
                               "the index again.")
    missing = [key for key in REQUIRED if key not in record]
    if missing:
        raise IndexFormatError(f"The sentencekit record of {where} is damaged: it lacks {', '.join(missing)}. "
                               "Export the index again with `sentencekit index export`.")
    return record


def check_model(record: dict[str, Any], model: Any, where: str) -> None:
    """Refuse ``model`` unless it is the one the table's vectors came from: the fingerprint and dimension
    checks of ``EmbeddingIndex.open`` (:func:`sentencekit.search.model_check.mismatches`). Raises
    :class:`~sentencekit.search.index_errors.IndexMismatchError` naming what differs (model, dimension) and
    what to do, or ``TypeError`` for a model that cannot embed texts (e.g. a cross-encoder).
    ``model=None`` passes (inspection only).

    >>> check_model(record, other_model, "lancedb:///tmp/db?table=faq")  # doctest: +SKIP
    Traceback (most recent call last):
    ...
    sentencekit.search.index_errors.IndexMismatchError: Cannot use lancedb:///tmp/db?table=faq with this ...
    """
    if model is None:
        return
    check_bi_encoder(model)
    problems = mismatches(record, model)
    if problems:
        raise mismatch_error(where, problems, record, built="exported", rebuild="export an index built with this "
                             "model to another table (`sentencekit index export INDEX_DIR --to ...`)")


def require_model(model: Any, where: str) -> Any:
    """The model a search needs; :class:`IndexReadOnlyError` when the table was opened without one."""
    if model is None:
        raise IndexReadOnlyError(f"Cannot search {where}: it was opened without a model (inspection only). Open "
                                 "it with open_store(location, model), using the model it was exported with.")
    return model


def row_values(doc: dict[str, Any], part: int) -> dict[str, Any]:
    """The non-vector columns of the row of ``doc``'s vector number ``part`` (see :data:`COLUMNS`).

    >>> row_values({"id": "a", "text": "Refunds. Shipping.", "metadata": {"v": 1}, "chunks": [[0, 8], [9, 18]]}, 1)
    ... # doctest: +NORMALIZE_WHITESPACE
    {'id': 'a', 'part': 1, 'text': 'Refunds. Shipping.', 'title': None, 'metadata': '{"v": 1}', 'modality': None,
     'chunk_index': 1, 'chunk_start': 9, 'chunk_end': 18}
    """
    chunk = int(part) - (1 if doc.get("title") else 0)
    span = doc["chunks"][chunk] if doc.get("chunks") and chunk >= 0 else None
    metadata = doc.get("metadata")
    return {"id": doc["id"], "part": int(part), "text": doc["text"], "title": doc.get("title"),
            "metadata": None if metadata is None else json.dumps(metadata, ensure_ascii=False),
            "modality": doc.get("modality"), "chunk_index": chunk if span else None,
            "chunk_start": span[0] if span else None, "chunk_end": span[1] if span else None}


def row_document(row: dict[str, Any]) -> dict[str, Any]:
    """The stored document of a table row, in the form :func:`sentencekit.search.results.document_hit` reads
    (its ``"chunks"`` hold only this row's span, under its chunk number).

    >>> row_document({"id": "a", "text": "t", "metadata": '{"v": 1}', "title": None, "modality": None,
    ...               "chunk_index": None, "chunk_start": None, "chunk_end": None})
    {'id': 'a', 'text': 't', 'metadata': {'v': 1}}
    """
    metadata = row.get("metadata")
    if isinstance(metadata, str):
        metadata = json.loads(metadata)
    doc: dict[str, Any] = {"id": row["id"], "text": row["text"], "metadata": metadata}
    if row.get("title"):
        doc["title"] = row["title"]
    if row.get("modality"):
        doc["modality"] = row["modality"]
    if row.get("chunk_index") is not None:
        doc["chunks"] = {int(row["chunk_index"]): [int(row["chunk_start"]), int(row["chunk_end"])]}
    return doc
