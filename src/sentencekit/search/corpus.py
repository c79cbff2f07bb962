"""Reading a corpus file: JSON lines (``{"id", "title", "text"}``), CSV/TSV or plain text (one document
a line)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

SAMPLE_CORPUS = Path(__file__).resolve().parent.parent / "data" / "sample_corpus.jsonl"


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    title: str = ""


def load_corpus(path: str | Path, *, column: str = "text") -> list[Document]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Corpus file not found: {path}")
    suffix = path.suffix.lower()
    docs: list[Document] = []
    if suffix in (".jsonl", ".ndjson"):
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict) or not isinstance(row.get(column), str):
                    raise ValueError(f"{path}:{lineno}: expected an object with a string {column!r} field")
                docs.append(Document(str(row.get("id", len(docs))), row[column], str(row.get("title", ""))))
    elif suffix in (".csv", ".tsv"):
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
            if reader.fieldnames is None or column not in reader.fieldnames:
                raise ValueError(f"{path}: no {column!r} column (columns: {reader.fieldnames})")
            for row in reader:
                docs.append(Document(str(row.get("id") or len(docs)), row[column], row.get("title") or ""))
    else:
        with open(path, encoding="utf-8") as f:
            docs = [Document(str(i), line.rstrip("\n")) for i, line in enumerate(f) if line.strip()]
    if not docs:
        raise ValueError(f"Corpus file {path} has no documents.")
    return docs
