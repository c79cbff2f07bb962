"""Sides of an :class:`~sentencekit.search.index.EmbeddingIndex` kept as one *part* per segment, encoded by a
second model beside the dense one: the learned-sparse side (:mod:`sentencekit.search.sparse_side`, SPLADE)
and the late-interaction side (:mod:`sentencekit.search.late_interaction_side`, ColBERT).

What they share lives here, once: the manifest entry (``manifest[kind.key]``: the model's name, class and
fingerprint, one record per part, the sizes and SHA-256 of every part file in ``"checks"``), the refusal of
another model, the rule that parts follow the log's segments one for one and row for row, writing the parts
of new segments in a commit, and loading parts once per name. What differs (how texts are encoded, the part
files, how a loaded side searches) is a :class:`PartKind`.

Parts follow the segments: ``add`` writes the new segment's part (only the new documents are encoded),
``delete`` changes nothing (deleted rows are masked out at search), ``compact`` writes the live rows of the
old parts as the new segment's part (nothing is encoded again), and a part whose segment left the log is
dropped. Part files go through temporary files and ``os.replace`` and count only once a manifest listing
them is committed.

>>> alignment_problem("sparse", {"parts": [{"segment": "seg-1", "rows": 2}]},
...                   [{"kind": "segment", "name": "seg-1", "rows": 3}])
'the sparse part of seg-1 has 2 rows, the segment 3'
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sentencekit.search.storage import MANIFEST, SEGMENTS, damaged, file_record

PART_SIDES = ("sparse", "multivector")  # manifest keys of the per-segment sides, in hybrid fusion order


class PartKind(ABC):
    """One kind of per-segment side: its names, its model's interface and its part files.

    ``key``: the manifest key, the ``kind`` of its entry and the ``retrieval=`` name; ``prefix``: the stem of
    its part files; ``label``: how messages name it; ``model_arg``: the ``EmbeddingIndex.create`` / ``open``
    argument taking its model; ``why``: what mixing two models would break (for the mismatch message).
    """

    key: str
    prefix: str
    label: str
    model_arg: str
    why: str

    @property
    def enable(self) -> str:
        """The ``EmbeddingIndex`` method that adds this side to an existing index."""
        return f"enable_{self.key}"

    @abstractmethod
    def require(self) -> None:
        """Raise ``ImportError`` saying what to install when the side's dependencies are missing."""

    @abstractmethod
    def check_model(self, model: Any) -> None:
        """Raise ``TypeError`` for an object that cannot encode documents and queries for this side."""

    @abstractmethod
    def new_entry(self, model: Any) -> dict[str, Any]:
        """The manifest entry of an empty side for ``model`` (:func:`empty_entry` plus the side's shape)."""

    @abstractmethod
    def encode(self, model: Any, entry: dict[str, Any], texts: Sequence[str], *, query: bool) -> Any:
        """Rows of ``texts`` as the side stores them; ``IndexMismatchError`` if they do not fit ``entry``."""

    @abstractmethod
    def row_count(self, rows: Any) -> int:
        """How many rows (texts) ``rows`` holds."""

    @abstractmethod
    def write_part(self, root: str | os.PathLike, name: str, segment: str, rows: Any,
                   entry: dict[str, Any]) -> dict[str, Any]:
        """Write one segment's part under ``segments/`` (files named ``{name}.*``; ``ValueError`` for rows that
        do not fit ``entry``); returns its record: ``segment``, ``name``, ``rows``, ``roles`` (role -> file)."""

    @abstractmethod
    def load_part(self, root: str | os.PathLike, part: dict[str, Any], entry: dict[str, Any]) -> Any:
        """Load a committed part, checking it against the manifest (``IndexFormatError`` naming the damaged
        file, ``FileNotFoundError`` for a missing one)."""

    @abstractmethod
    def side(self, parts: list[Any], entry: dict[str, Any]) -> Any:
        """The searchable side of loaded ``parts`` (in log order): ``top(...)`` and ``rows(global rows)``."""


def part_kinds() -> dict[str, PartKind]:
    """The per-segment side kinds by manifest key, in :data:`PART_SIDES` order.

    >>> list(part_kinds())
    ['sparse', 'multivector']
    """
    from sentencekit.search.late_interaction_side import MULTIVECTOR
    from sentencekit.search.sparse_side import SPARSE

    return {"sparse": SPARSE, "multivector": MULTIVECTOR}


def model_info(model: Any) -> dict[str, Any]:
    """The manifest record of a side's model: name, class and fingerprint (as for the dense model).

    >>> model_info(splade)["class"]  # doctest: +SKIP
    'SparseEncoder'
    """
    from sentencekit.fingerprint import model_fingerprint

    name = getattr(model, "model_name_or_path", None)
    return {"name_or_path": os.fspath(name) if name is not None else None, "class": type(model).__name__,
            "fingerprint": model_fingerprint(model)}


def empty_entry(kind: PartKind, model: Any, **shape: Any) -> dict[str, Any]:
    """The manifest entry of a side without parts yet; ``shape`` holds what every part must agree with.

    >>> empty_entry(part_kinds()["sparse"], splade, vocab=30522)["parts"]  # doctest: +SKIP
    []
    """
    return {"kind": kind.key, "name": kind.key, "model": model_info(model), **shape, "parts": [], "files": [],
            "checks": {}}


def mismatches(kind: PartKind, manifest: dict[str, Any], model: Any) -> list[str]:
    """How ``model`` differs from the model ``manifest``'s ``kind`` side recorded (``[]``: the same, or no such
    side).

    >>> mismatches(part_kinds()["sparse"], {"log": []}, object())
    []
    """
    entry = manifest.get(kind.key)
    if not isinstance(entry, dict):
        return []
    recorded, given = entry["model"], model_info(model)
    if given["fingerprint"] == recorded["fingerprint"]:
        return []
    return [f"{kind.label} model fingerprint: recorded {recorded['fingerprint']} (model {recorded['name_or_path']!r}), "
            f"given {given['fingerprint']} (model {given['name_or_path']!r}); {kind.why}"]


def alignment_problem(label: str, entry: dict[str, Any], log: list[dict[str, Any]]) -> str | None:
    """Why the parts of a side entry do not follow the log's segments one for one, rows for rows (``None``:
    they do); ``label`` names the side."""
    segments = [e for e in log if e.get("kind") == "segment"]
    parts = entry.get("parts", [])
    if [p.get("segment") for p in parts] != [s["name"] for s in segments]:
        return (f"the {label} side has parts for segments {[p.get('segment') for p in parts]}, the log lists "
                f"{[s['name'] for s in segments]}")
    for part, segment in zip(parts, segments):
        if part.get("rows") != segment.get("rows"):
            return (f"the {label} part of {segment['name']} has {part.get('rows')} rows, the segment "
                    f"{segment.get('rows')}")
    return None


def encode_segment(kind: PartKind, root: str | os.PathLike, model: Any, entry: dict[str, Any],
                   segment: dict[str, Any]) -> Any:
    """A committed segment's rows for the ``kind`` side, encoded from its stored texts (each chunk's span).

    >>> encode_segment(part_kinds()["sparse"], folder, splade, manifest["sparse"], manifest["log"][0])  # doctest: +SKIP
    """
    from sentencekit.search.segments import load_segment, row_texts

    return kind.encode(model, entry, row_texts(load_segment(root, segment).docs), query=False)


def next_entry(kind: PartKind, root: str | os.PathLike, entry: dict[str, Any], log: list[dict[str, Any]],
               provide: Callable[[dict[str, Any]], Any] | None, make_name: Callable[[], str],
               model: Callable[[], Any]) -> dict[str, Any]:
    """The ``kind`` side's entry for a new ``log``: the parts of segments still in it are kept as they are,
    segments without a part get one (written under ``make_name()``) from ``provide(segment entry) -> rows``,
    or when that is ``None`` encoded from the segment's stored texts by ``model()``; parts of segments that
    left the log are dropped. Sizes and SHA-256 of new files are recorded; kept files keep their records.
    Rows of another count than the segment's raise ``ValueError``.

    >>> kind = part_kinds()["sparse"]  # doctest: +SKIP
    >>> next_entry(kind, folder, manifest["sparse"], log, None, lambda: new_name("spr", 5), lambda: m)  # doctest: +SKIP
    """
    by_segment = {p["segment"]: p for p in entry.get("parts", [])}
    parts = []
    for segment in (e for e in log if e.get("kind") == "segment"):
        part = by_segment.get(segment["name"])
        if part is None:
            rows = provide(segment) if provide is not None else None
            rows = rows if rows is not None else encode_segment(kind, root, model(), entry, segment)
            if kind.row_count(rows) != segment["rows"]:
                raise ValueError(f"Got {kind.row_count(rows)} {kind.label} rows for segment {segment['name']} of "
                                 f"{segment['rows']} rows.")
            part = kind.write_part(root, make_name(), segment["name"], rows, entry)
        parts.append(part)
    files = sorted(f for p in parts for f in p["roles"].values())
    old = entry.get("checks", {})
    checks = {f: old[f] if f in old else file_record(Path(root) / SEGMENTS / f) for f in files}
    return {**entry, "parts": parts, "files": files, "checks": checks}


class PartCache:
    """Loaded parts of one side by name, so that a refresh only loads the parts of new segments.

    >>> PartCache(part_kinds()["sparse"], "/data/idx").side({"sparse": {...}, "log": [...]})  # doctest: +SKIP
    """

    def __init__(self, kind: PartKind, root: str | os.PathLike) -> None:
        self.kind, self.root = kind, Path(root)
        self._parts: dict[str, Any] = {}

    def side(self, manifest: dict[str, Any]) -> Any:
        """The loaded side of ``manifest`` (which must have one); its parts must follow the log's segments
        (``IndexFormatError`` naming ``manifest.json`` otherwise)."""
        entry = manifest[self.kind.key]
        problem = alignment_problem(self.kind.label, entry, manifest["log"])
        if problem:
            raise damaged(self.root / MANIFEST, problem)
        parts = []
        for part in entry["parts"]:
            if part["name"] not in self._parts:
                self._parts[part["name"]] = self.kind.load_part(self.root, part, entry)
            parts.append(self._parts[part["name"]])
        used = {p["name"] for p in entry["parts"]}
        self._parts = {k: v for k, v in self._parts.items() if k in used}
        return self.kind.side(parts, entry)


__all__ = ["PART_SIDES", "PartKind", "PartCache", "part_kinds", "model_info", "empty_entry", "mismatches",
           "alignment_problem", "encode_segment", "next_entry"]
