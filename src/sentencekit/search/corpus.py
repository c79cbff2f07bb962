"""The one corpus reader, used by ``sentencekit search``, ``index build``, ``rerank``, ``encode`` and
``embed-corpus``.

Formats, chosen by the file's suffix:

- ``.parquet``: one row a document (needs pyarrow).
- ``.jsonl`` / ``.ndjson`` / ``.json``: JSON lines, one object a line (``{"id": ..., "title": ..., "text": ...}``).
- ``.csv`` / ``.tsv``: a header line naming the columns, then one row a document.
- anything else (``.txt``, ``.md``...): plain text, one document a line.

The same rules hold for every format:

- Blank lines (JSON lines, plain text) are not documents. An empty text in a structured row *is* one.
- Every document's text must be a string; a row without one is an error that names the file and the
  line (``docs.jsonl:48: ...``; Parquet: ``docs.parquet: row 47: ...``, counting rows from 0).
- Ids come from the id column; without one they are the row numbers 0, 1, 2... (blank lines skipped).
  An id column named by the caller must exist and have a value on every row; the default ``id`` column of
  :func:`load_corpus` is used when the file has it (JSON lines: when the first row has it), and then every
  row must have one, so that ids from the file never mix with row numbers.
- Titles (optional) are ``""`` where a row has none.
- A file without any document is an error.

Files are read as a stream in batches (:func:`iter_corpus`), so a corpus never has to fit in memory.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

SAMPLE_CORPUS = Path(__file__).resolve().parent.parent / "data" / "sample_corpus.jsonl"
# Bumped when the rules above change what documents or ids a file gives, so that indexes kept for a corpus
# (search/corpus_index.py) are rebuilt instead of mixing old and new ids. 2: one reader for every command.
# 3: titles get their own vector (indexes kept from 2 have none).
READER_RULES = 3
FOLDER_SUFFIXES = (".txt", ".md", ".rst")  # files of a folder corpus; each file is one document
_MISSING = object()


@dataclass(frozen=True)
class Document:
    """One document: ``id`` (text), ``text`` and an optional ``title``."""

    id: str
    text: str
    title: str = ""


@dataclass
class CorpusBatch:
    """Consecutive rows of a corpus: ``ids`` (the id column's values as stored, or the row numbers as
    ints), ``texts`` and ``titles`` (``""`` where a row has none), all of the same length."""

    ids: list[Any] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)


def corpus_format(path: str | os.PathLike) -> str:
    """``"parquet"``, ``"jsonl"``, ``"csv"``, ``"tsv"`` or ``"text"``, from the file's suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".parquet":
        return "parquet"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return suffix[1:]
    return "text"


def iter_corpus(path: str | os.PathLike, column: str = "text", *, id_column: str | None = None,
                id_required: bool = True, title_column: str | None = None,
                batch_rows: int = 10_000, encoding: str = "utf-8") -> Iterator[CorpusBatch]:
    """The documents of a corpus file as :class:`CorpusBatch` es of at most ``batch_rows`` rows, read as a
    stream (see the module docstring for the formats and rules).

    ``column``: the text column. ``id_column``: where ids come from (``None``: the row numbers); with
    ``id_required=False`` a file without that column gets row numbers instead of an error.
    ``title_column``: optional titles. ``encoding``: of text formats (not Parquet). Raises
    ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file and line (or Parquet row)
    for a missing column, a bad row, undecodable text or an empty corpus.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Corpus file {path} does not exist.")
    if not isinstance(batch_rows, int) or batch_rows <= 0:
        raise ValueError(f"batch_rows must be a positive integer, got {batch_rows!r}")
    fmt = corpus_format(path)
    check_encoding(encoding)
    if fmt == "parquet":
        records = _parquet_records(path, column, id_column, id_required, title_column, batch_rows)
    elif fmt == "jsonl":
        records = _jsonl_records(path, column, encoding)
    elif fmt in ("csv", "tsv"):
        records = _csv_records(path, column, id_column, id_required, fmt, encoding)
    else:
        if id_column is not None and id_required:
            raise ValueError(f"{path}: a plain text file has no {id_column!r} column; write the corpus as JSON "
                             "lines, CSV or Parquet to keep ids, or leave the id column out to number the rows.")
        records = _text_records(path, column, encoding)

    batch, rows, ids_from_file = CorpusBatch(), 0, None
    for where, record in records:
        text = record.get(column, _MISSING)
        if not isinstance(text, str):
            found = "no value" if text is _MISSING or text is None else f"a {type(text).__name__}"
            if fmt == "jsonl":
                raise ValueError(f"{where}: expected a JSON object with {column!r} holding text, found {found}.")
            raise ValueError(f"{where}: the {column!r} column has {found}, not text.")
        if ids_from_file is None:  # decided by the first row (JSON lines) or the columns (other formats)
            ids_from_file = id_column is not None and (id_required or id_column in record)
        if ids_from_file:
            row_id = record.get(id_column, _MISSING)
            if row_id is _MISSING or row_id is None or row_id == "":
                raise ValueError(f"{where}: no {id_column!r} (the id column)"
                                 + ("" if id_required else ", although earlier rows have one")
                                 + "; give every row an id" + ("." if id_required else ", or none."))
        else:
            row_id = rows
        title = record.get(title_column) if title_column else None
        batch.ids.append(row_id)
        batch.texts.append(text)
        batch.titles.append("" if title is None else str(title))
        rows += 1
        if len(batch) == batch_rows:
            yield batch
            batch = CorpusBatch()
    if len(batch):
        yield batch
    if rows == 0:
        raise ValueError(f"Corpus file {path} has no documents" + ("." if fmt == "parquet" else
                                                                   " (blank lines are skipped)."))


def count_rows(path: str | os.PathLike, column: str = "text", *, id_column: str | None = None,
               id_required: bool = True, encoding: str = "utf-8") -> int:
    """The number of documents of a corpus file: a full streaming pass that also checks every row, so a bad
    row is reported before any work starts. Same arguments and errors as :func:`iter_corpus`."""
    return sum(len(batch) for batch in iter_corpus(path, column, id_column=id_column, id_required=id_required,
                                                   encoding=encoding))


def load_corpus(path: str | os.PathLike, *, column: str = "text", id_column: str = "id",
                title_column: str = "title", encoding: str = "utf-8") -> list[Document]:
    """Every document of a corpus file, in memory, or of a folder (each ``.txt``/``.md``/``.rst`` file below
    it is one document: its id the relative path, its title the file name without suffix).

    Ids come from ``id_column`` when the file has it, otherwise they are the row numbers; every id is
    turned into text. Errors as :func:`iter_corpus`.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES)
        if not files:
            raise ValueError(f"{path} has no {'/'.join(FOLDER_SUFFIXES)} files to read as documents.")
        check_encoding(encoding)
        return [Document(str(p.relative_to(path)), _read_text_file(p, encoding), p.stem) for p in files]
    return [Document(str(row_id), text, title)
            for batch in iter_corpus(path, column, id_column=id_column, id_required=False, title_column=title_column,
                                     encoding=encoding)
            for row_id, text, title in zip(batch.ids, batch.texts, batch.titles)]


# -- one reader per format: (where, record) pairs, where is "file:line" or "file: row N" -------------------
Record = tuple[str, dict[str, Any]]


def check_encoding(encoding: str) -> None:
    """Raise ``ValueError`` for an encoding name Python does not know (before any file is read)."""
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(f"unknown text encoding {encoding!r}; use a Python codec name such as utf-8, latin-1 or "
                         "cp1252.") from None


def _is_utf8(encoding: str) -> bool:
    return encoding.replace("_", "-").lower() in ("utf-8", "utf8")


def _not_text(encoding: str, reason: str) -> str:
    """``not UTF-8 text (REASON); WHAT TO DO``: the part of a decoding error after the file and line."""
    if _is_utf8(encoding):
        return (f"not UTF-8 text ({reason}); give its encoding (--encoding latin-1, cp1252, ...; encoding= in "
                "Python) or convert it to UTF-8, e.g. with iconv")
    return f"not {encoding} text ({reason}); check the encoding you gave"


def decoded_lines(raw_lines: Iterator[bytes], encoding: str, where: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of byte lines, line endings kept and a UTF-8 byte-order mark dropped. Lines
    are decoded one at a time (a text-mode file decodes whole blocks), so a bad byte is reported on its
    line: ``where:LINE: not UTF-8 text ...`` with what to do (``--encoding``)."""
    first = "utf-8-sig" if _is_utf8(encoding) else encoding
    for lineno, raw in enumerate(raw_lines, 1):
        try:
            yield lineno, raw.decode(first if lineno == 1 else encoding)
        except UnicodeDecodeError as exc:
            if lineno == 1 and raw[:2] in (b"\xff\xfe", b"\xfe\xff"):  # a UTF-16 byte-order mark
                raise ValueError(f"{where}: the file starts with a UTF-16 byte-order mark: it is UTF-16 text "
                                 "(e.g. written by PowerShell); give --encoding utf-16 (encoding='utf-16')") from None
            raise ValueError(f"{where}:{lineno}: "
                             + _not_text(encoding, f"{exc.reason} at byte {exc.start} of the line") + ".") from None


def text_lines(binary: BinaryIO, encoding: str, where: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a binary stream in ``encoding``: split on the byte ``\n`` and decoded
    line by line (:func:`decoded_lines`) where the encoding writes newline as that byte (UTF-8, Latin-1,
    cp1252, ...); decoded as a stream for UTF-16 / UTF-32, whose newline is several bytes."""
    if "\n".encode(encoding) == b"\n":
        yield from decoded_lines(binary, encoding, where)
        return
    lineno, text = 0, io.TextIOWrapper(binary, encoding=encoding, newline="")
    try:
        for lineno, line in enumerate(text, 1):
            yield lineno, line
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where}:{lineno + 1}: " + _not_text(encoding, exc.reason) + ".") from None
    finally:
        text.detach()  # the caller owns the binary stream (a file it closes, or stdin)


def _lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    with open(path, "rb") as f:
        yield from text_lines(f, encoding, str(path))


def _read_text_file(path: Path, encoding: str = "utf-8") -> str:
    """A whole file (one document of a folder corpus)."""
    try:
        return path.read_bytes().decode("utf-8-sig" if _is_utf8(encoding) else encoding)
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: " + _not_text(encoding, exc.reason) + ", or move the file out of the "
                         "folder.") from None


def _text_records(path: Path, column: str, encoding: str) -> Iterator[Record]:
    for lineno, line in _lines(path, encoding):
        if line.strip():
            yield f"{path}:{lineno}", {column: line.rstrip("\r\n")}


def _jsonl_records(path: Path, column: str, encoding: str) -> Iterator[Record]:
    for lineno, line in _lines(path, encoding):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg}); a JSON lines corpus has one JSON object "
                             "a line.") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{lineno}: expected a JSON object with {column!r} holding text, found a "
                             f"{type(row).__name__}.")
        yield f"{path}:{lineno}", row


def _csv_records(path: Path, column: str, id_column: str | None, id_required: bool, fmt: str,
                 encoding: str) -> Iterator[Record]:
    lines = (line for _, line in _lines(path, encoding))
    reader = csv.DictReader(lines, delimiter="\t" if fmt == "tsv" else ",")
    try:
        _check_columns(path, reader.fieldnames or [], column, id_column if id_required else None)
        for row in reader:
            yield f"{path}:{reader.line_num}", row
    except csv.Error as exc:  # e.g. an unterminated quote: not a ValueError, so the CLI would not report it
        raise ValueError(f"{path}:{reader.line_num}: not valid {fmt.upper()} ({exc}).") from None


def _parquet_records(path: Path, column: str, id_column: str | None, id_required: bool, title_column: str | None,
                     batch_rows: int) -> Iterator[Record]:
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    names = file.schema_arrow.names
    _check_columns(path, names, column, id_column if id_required else None)
    wanted = [name for name in dict.fromkeys([column, id_column, title_column]) if name in names]
    start = 0
    for batch in file.iter_batches(batch_size=batch_rows, columns=wanted):
        values = [batch.column(name).to_pylist() for name in wanted]
        for i, row in enumerate(zip(*values)):
            yield f"{path}: row {start + i}", dict(zip(wanted, row))
        start += batch.num_rows


def _check_columns(path: Path, names: list[str], column: str, id_column: str | None) -> None:
    for name, flag in ((column, "--column"), (id_column, "--id-column")):
        if name is not None and name not in names:
            columns = ", ".join(map(repr, names)) or "none"
            raise ValueError(f"{path}: no {name!r} column (its columns: {columns}); name another one with {flag}.")
