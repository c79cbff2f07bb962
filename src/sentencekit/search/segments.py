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

from sentencekit.search.errors import IndexFormatError
from sentencekit.search.scoring import Block, pack_bits, quantize_int8
from sentencekit.search.storage import SEGMENTS, load_jsonl, load_npy, save_jsonl, save_npy


def rows_per_doc(docs: list[dict[str, Any]]) -> np.ndarray:
    """How many vectors each document has: one, or one per chunk.

    >>> rows_per_doc([{"chunks": [[0, 5], [3, 9]]}, {"chunks": None}]).tolist()
    [2, 1]
    """
    return np.array([len(d["chunks"]) if d.get("chunks") else 1 for d in docs], dtype=np.int64)


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
            "roles": files, "files": sorted(files.values())}


def write_deletes(root: str | os.PathLike, name: str, ids: list[str]) -> dict[str, Any]:
    """Write the ids removed by one ``delete`` call; returns its log entry.

    >>> write_deletes(folder, "del-000002-1a2b3c4d", ["7"])["count"]  # doctest: +SKIP
    1
    """
    from sentencekit.files import atomic_write_bytes

    file = f"{name}.json"
    atomic_write_bytes(Path(root) / SEGMENTS / file, json.dumps(ids, ensure_ascii=False).encode("utf-8"))
    return {"kind": "delete", "name": name, "count": len(ids), "files": [file]}


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
    vectors = load_npy(folder / roles["vectors"])
    codes = load_npy(folder / roles["codes"]) if "codes" in roles else None
    scale = np.asarray(load_npy(folder / roles["scale"])) if "scale" in roles else None
    docs = load_jsonl(folder / roles["docs"])
    if len(docs) != entry["docs"] or vectors.shape[0] != entry["rows"] or rows_per_doc(docs).sum() != entry["rows"]:
        raise IndexFormatError(f"Segment {entry['name']} in {folder} does not match the manifest "
                               f"({len(docs)} documents / {vectors.shape[0]} vectors on disk, "
                               f"{entry['docs']} / {entry['rows']} recorded). The index is damaged.")
    return Segment(Block(vectors, codes, scale), docs)


@dataclass
class Snapshot:
    """A consistent view of the index at one committed manifest. Rows (vectors) and documents are
    numbered globally in log order; deleted ones stay in the arrays, masked out by ``alive``.

    >>> Snapshot({"log": []}).counts()
    {'documents': 0, 'vectors': 0, 'segments': 0, 'deleted_vectors': 0}
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
        return len(self.row_doc) > len(self.docs)

    def counts(self) -> dict[str, int]:
        return {"documents": len(self.live), "vectors": self.live_rows, "segments": len(self.blocks),
                "deleted_vectors": len(self.alive) - self.live_rows}


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
                self._items[name] = json.loads((self.root / SEGMENTS / entry["files"][0]).read_text("utf-8"))
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
