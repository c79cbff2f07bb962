"""Segments (immutable batches of documents and their vectors) and the in-memory snapshot of an index
built by replaying the manifest's log: segments add documents, delete entries remove them.

>>> docs = [{"id": "a", "text": "x", "metadata": None, "chunks": None}]
>>> rows_per_doc(docs).tolist()
[1]
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sentencekit.search.scoring import Block, pack_bits, quantize_int8
from sentencekit.search.storage import (
    SEGMENTS,
    check_size,
    damaged,
    file_record,
    load_jsonl,
    load_npy,
    save_jsonl,
    save_npy,
)


def rows_per_doc(docs: list[dict[str, Any]]) -> np.ndarray:
    """How many vectors each document has: one for its title (when it has one), then one for its text or
    one per chunk.

    >>> rows_per_doc([{"chunks": [[0, 5], [3, 9]]}, {"chunks": None}, {"title": "T", "chunks": None}]).tolist()
    [2, 1, 2]
    """
    return np.array([(1 if d.get("title") else 0) + (len(d["chunks"]) if d.get("chunks") else 1) for d in docs],
                    dtype=np.int64)


def row_texts(docs: list[dict[str, Any]]) -> list[str]:
    """The texts a segment's rows were embedded from: each document's title (if any), then its text or each
    chunk's span of it.

    >>> row_texts([{"text": "abcdef", "chunks": [[0, 3], [3, 6]]}, {"text": "xy", "title": "T", "chunks": None}])
    ['abc', 'def', 'T', 'xy']
    """
    return [piece for doc in docs
            for piece in ([doc["title"]] if doc.get("title") else [])
            + ([doc["text"][s:e] for s, e in doc["chunks"]] if doc.get("chunks") else [doc["text"]])]


def write_segment(root: str | os.PathLike, name: str, vectors: np.ndarray, docs: list[dict[str, Any]],
                  precision: str) -> dict[str, Any]:
    """Write a segment's files (each through a temporary file and ``os.replace``) and return its log
    entry. Nothing refers to the files until a manifest listing the entry is committed.

    >>> entry = write_segment(folder, "seg-000001-1a2b3c4d", vectors, docs, "float32")  # doctest: +SKIP
    """
    folder = Path(root) / SEGMENTS
    folder.mkdir(exist_ok=True)
    files = {"vectors": f"{name}.f32.npy", "docs": f"{name}.docs.jsonl"}
    save_npy(folder / files["vectors"], vectors.astype(np.float32, copy=False))
    if precision == "int8":
        codes, scale = quantize_int8(vectors)
        files.update(codes=f"{name}.int8.npy", scale=f"{name}.int8scale.npy")
        save_npy(folder / files["codes"], codes)
        save_npy(folder / files["scale"], scale)
    elif precision == "ubinary":
        files["codes"] = f"{name}.ubin.npy"
        save_npy(folder / files["codes"], pack_bits(vectors))
    save_jsonl(folder / files["docs"], docs)
    return {"kind": "segment", "name": name, "docs": len(docs), "rows": int(vectors.shape[0]),
            "roles": files, "files": sorted(files.values()), "checks": record_files(root, sorted(files.values()))}


def record_files(root: str | os.PathLike, files: list[str]) -> dict[str, dict[str, Any]]:
    """Size and SHA-256 of each of an entry's files, keyed by file name (the entry's ``"checks"``).

    >>> record_files(folder, ["del-000002-1a2b3c4d.json"])  # doctest: +SKIP
    {'del-000002-1a2b3c4d.json': {'bytes': 5, 'sha256': '...'}}
    """
    return {name: file_record(Path(root) / SEGMENTS / name) for name in files}


def add_missing_checks(root: str | os.PathLike, log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``log`` with ``"checks"`` added to entries written before sizes and checksums were recorded.
    The files' current contents are what gets recorded, so call this only after they loaded cleanly.

    >>> add_missing_checks(folder, manifest["log"])[0]["checks"]  # doctest: +SKIP
    """
    return [e if "checks" in e else {**e, "checks": record_files(root, e["files"])} for e in log]


def write_deletes(root: str | os.PathLike, name: str, ids: list[str]) -> dict[str, Any]:
    """Write the ids removed by one ``delete`` call; returns its log entry.

    >>> write_deletes(folder, "del-000002-1a2b3c4d", ["7"])["count"]  # doctest: +SKIP
    1
    """
    from sentencekit.files import atomic_write_bytes

    file = f"{name}.json"
    atomic_write_bytes(Path(root) / SEGMENTS / file, json.dumps(ids, ensure_ascii=False).encode("utf-8"))
    return {"kind": "delete", "name": name, "count": len(ids), "files": [file], "checks": record_files(root, [file])}


def load_deletes(root: str | os.PathLike, entry: dict[str, Any]) -> list[str]:
    """The ids a committed delete entry removes (size-checked; damage raises :class:`IndexFormatError`).

    >>> load_deletes(folder, manifest["log"][1])  # doctest: +SKIP
    ['7']
    """
    path = Path(root) / SEGMENTS / entry["files"][0]
    check_size(path, entry.get("checks", {}).get(path.name))
    try:
        ids = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise damaged(path, f"not a readable list of ids ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ids, list) or len(ids) != entry.get("count", len(ids)):
        raise damaged(path, f"expected a list of {entry.get('count')} ids")
    return ids


@dataclass
class Segment:
    """A loaded segment: its vectors (memory-mapped) and documents.

    >>> Segment(Block(np.zeros((1, 4), np.float32)), [{"id": "a"}]).block.rows
    1
    """

    block: Block
    docs: list[dict[str, Any]]


def load_segment(root: str | os.PathLike, entry: dict[str, Any]) -> Segment:
    """Load a committed segment, checking that its files agree with the log entry.

    >>> load_segment(folder, manifest["log"][0]).block.rows  # doctest: +SKIP
    10
    """
    folder, roles = Path(root) / SEGMENTS, entry["roles"]
    checks = entry.get("checks", {})
    for name in roles.values():  # a stat each: catches cut files before they are memory-mapped
        check_size(folder / name, checks.get(name))
    vectors = load_npy(folder / roles["vectors"])
    codes = load_npy(folder / roles["codes"]) if "codes" in roles else None
    scale = np.asarray(load_npy(folder / roles["scale"])) if "scale" in roles else None
    for role, array in (("vectors", vectors), ("codes", codes)):
        if array is not None and (array.ndim != 2 or array.shape[0] != entry["rows"]):
            raise damaged(folder / roles[role], f"holds an array of shape {array.shape}; the manifest "
                                                f"recorded {entry['rows']} rows")
    docs = load_jsonl(folder / roles["docs"])
    if any(not isinstance(d.get("id"), str) or not isinstance(d.get("text"), str) for d in docs):
        raise damaged(folder / roles["docs"], 'a line lacks a string "id" or "text"')
    if len(docs) != entry["docs"] or rows_per_doc(docs).sum() != entry["rows"]:
        raise damaged(folder / roles["docs"], f"holds {len(docs)} documents with {rows_per_doc(docs).sum()} "
                                              f"vectors; the manifest recorded {entry['docs']} / {entry['rows']}")
    return Segment(Block(vectors, codes, scale), docs)


@dataclass
class Snapshot:
    """A consistent view of the index at one committed manifest. Rows (vectors) and documents are
    numbered globally in log order; deleted ones stay in the arrays, masked out by ``alive``.

    >>> Snapshot({"log": []}).counts()
    {'documents': 0, 'vectors': 0, 'segments': 0, 'deleted_vectors': 0, 'titles': 0}
    """

    manifest: dict[str, Any]
    blocks: list[Block] = field(default_factory=list)
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # first row of each block
    docs: list[dict[str, Any]] = field(default_factory=list)
    doc_first_row: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))  # [docs + 1]
    row_doc: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    alive: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    live: dict[str, int] = field(default_factory=dict)  # id -> global document number

    @property
    def live_rows(self) -> int:
        return int(self.alive.sum())

    @property
    def has_chunks(self) -> bool:
        """Whether some document has more than one vector (chunks, or a title row)."""
        return len(self.row_doc) > len(self.docs)

    def counts(self) -> dict[str, int]:
        return {"documents": len(self.live), "vectors": self.live_rows, "segments": len(self.blocks),
                "deleted_vectors": len(self.alive) - self.live_rows,
                "titles": sum(1 for number in self.live.values() if self.docs[number].get("title"))}


class SegmentCache:
    """Loaded segments and delete lists by name, so a refresh only reads what is new.

    >>> SegmentCache("/data/idx").snapshot({"log": []}).counts()["documents"]
    0
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self._items: dict[str, Any] = {}

    def _get(self, entry: dict[str, Any]) -> Any:
        name = entry["name"]
        if name not in self._items:
            if entry["kind"] == "segment":
                self._items[name] = load_segment(self.root, entry)
            else:
                self._items[name] = load_deletes(self.root, entry)
        return self._items[name]

    def snapshot(self, manifest: dict[str, Any]) -> Snapshot:
        """Replay ``manifest``'s log; raises ``FileNotFoundError`` if a listed file vanished (the caller
        re-reads the manifest).

        >>> SegmentCache(folder).snapshot(read_manifest(folder)).live  # doctest: +SKIP
        {'refund': 0, 'shipping': 1}
        """
        snap = Snapshot(manifest)
        first_rows, dead, rows = [], [], 0
        for entry in manifest["log"]:
            item = self._get(entry)
            if entry["kind"] == "segment":
                base = len(snap.docs)
                snap.live.update((doc["id"], base + k) for k, doc in enumerate(item.docs))
                snap.docs.extend(item.docs)
                snap.blocks.append(item.block)
                first_rows.append(rows + np.concatenate([[0], np.cumsum(rows_per_doc(item.docs))[:-1]]))
                rows += item.block.rows
            else:
                dead.extend(g for g in (snap.live.pop(i, None) for i in item) if g is not None)
        snap.offsets = np.cumsum([0] + [b.rows for b in snap.blocks])[:-1].astype(np.int64)
        snap.doc_first_row = np.concatenate(first_rows + [[rows]]).astype(np.int64)
        snap.row_doc = np.repeat(np.arange(len(snap.docs)), np.diff(snap.doc_first_row))
        alive_docs = np.ones(len(snap.docs), bool)
        alive_docs[dead] = False
        snap.alive = alive_docs[snap.row_doc]
        used = {e["name"] for e in manifest["log"]}
        self._items = {k: v for k, v in self._items.items() if k in used}
        return snap
