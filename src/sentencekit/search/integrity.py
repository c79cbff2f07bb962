"""Finding and repairing damaged files of an :class:`~sentencekit.search.index.EmbeddingIndex`.

Opening an index only compares file sizes with the manifest (cheap); :func:`verify` reads every byte
and compares SHA-256 checksums too, so it also finds damage that keeps a file's size (flipped bytes).

:func:`repair` rewrites the manifest without the damaged entries:

* a segment whose ``docs.jsonl`` is intact but whose vectors are damaged is re-embedded from the
  stored texts when a model is given (the documents keep their ids, metadata and chunks); without a
  model it is dropped, and its ids are reported as lost;
* a segment whose ``docs.jsonl`` is damaged is dropped: the ids of its readable lines are reported, and
  how many more documents were in it (their ids are unknown);
* a damaged delete list is dropped: the documents it deleted are back in the index (their ids are not
  known); the report says so;
* the lexical (BM25) side, if the index keeps one, is rebuilt from the stored texts of the documents
  that remain whenever anything was repaired (it needs no model), since it must match them; without
  bm25s installed it is dropped instead, and the next lexical or hybrid search builds it again;
* the learned-sparse and the late-interaction (multi-vector) sides, if the index keeps them, follow the
  segments: parts of dropped segments are dropped, re-embedded segments keep their (intact) part; a damaged
  part is re-encoded from its segment's stored texts when the side's model is given, else the whole side is
  dropped (``enable_sparse`` / ``enable_multivector`` build it again), since a side missing some rows would
  silently never find those documents.

The dropped files are moved to ``<index>/damaged/`` (never deleted), for salvage by hand. A damaged
``manifest.json`` cannot be repaired: it is the only record of the index's settings and log.

>>> report = verify("faq-index")          # doctest: +SKIP
>>> report["ok"], report["problems"][0]["file"]   # doctest: +SKIP
(False, 'seg-000001-1a2b3c4d.f32.npy')
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from sentencekit.search.image_documents import row_inputs
from sentencekit.search.index_errors import IndexFormatError
from sentencekit.search.segment_sides import PartKind, alignment_problem, next_entry, part_kinds
from sentencekit.search.segment_sides import mismatches as side_mismatches
from sentencekit.search.segments import (
    SegmentCache,
    add_missing_checks,
    load_deletes,
    load_segment,
    write_segment,
)
from sentencekit.search.storage import (
    SEGMENTS,
    committed_entries,
    file_record,
    load_jsonl,
    new_name,
    read_manifest,
    remove_uncommitted,
    write_manifest,
    writer_lock,
)

DAMAGED = "damaged"  # where repair moves the files it drops


def _file_problem(folder: Path, name: str, record: dict[str, Any] | None) -> str | None:
    """What is wrong with one committed file, by its recorded size and checksum (``None``: nothing)."""
    path = folder / name
    if not path.is_file():
        return "missing"
    if record is None:
        return None  # written before checksums were recorded: only loading it can tell
    actual = file_record(path)
    if actual["bytes"] != record["bytes"]:
        return f"{actual['bytes']} bytes, the manifest recorded {record['bytes']}"
    if actual["sha256"] != record["sha256"]:
        return "same size as recorded but different content (SHA-256 mismatch): bytes were changed"
    return None


def _entry_problems(root: Path, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The damaged files of one log entry (checksums, then loading it for entries without them)."""
    folder, checks = root / SEGMENTS, entry.get("checks", {})
    found = []
    for name in entry.get("files", []):
        problem = _file_problem(folder, name, checks.get(name))
        if problem:
            found.append({"entry": entry.get("name"), "kind": entry.get("kind"), "file": name, "problem": problem})
    if not found:
        try:
            _load_entry(root, entry)
        except (IndexFormatError, KeyError, TypeError) as exc:
            found.append({"entry": entry.get("name"), "kind": entry.get("kind"), "file": None, "problem": str(exc)})
    return found


def _load_entry(root: Path, entry: dict[str, Any]) -> None:
    """Load one committed entry as the index would, so that damage a checksum cannot see raises."""
    kind = part_kinds().get(entry.get("kind"))
    if kind is not None:
        try:
            kind.require()
        except ImportError:
            return  # its checksums were compared; reading it further needs the side's dependency (scipy)
        for part in entry["parts"]:
            kind.load_part(root, part, entry)
    elif entry.get("kind") == "lexical":
        from sentencekit.search.lexical import import_bm25s, load_lexical

        try:
            import_bm25s()
        except ImportError:
            return  # its checksums were compared; reading it further needs bm25s
        load_lexical(root, entry)
    elif entry.get("kind") == "segment":
        load_segment(root, entry)
    else:
        load_deletes(root, entry)


def verify(root: str | os.PathLike) -> dict[str, Any]:
    """Check every committed file of the index at ``root`` against the sizes and SHA-256 checksums in
    its manifest (entries of old indexes without checksums are checked by loading them). Returns
    ``{"ok", "problems": [{"entry", "kind", "file", "problem"}], "unchecked": [entry names without
    checksums]}`` (``kind`` is ``"segment"``, ``"delete"``, ``"lexical"``, ``"sparse"`` or
    ``"multivector"``); a manifest that cannot be read raises :class:`IndexFormatError`.

    >>> verify("faq-index")["ok"]   # doctest: +SKIP
    True
    """
    root = Path(root)
    manifest = read_manifest(root)
    problems = [p for entry in committed_entries(manifest) for p in _entry_problems(root, entry)]
    problems += _alignment_problems(manifest)
    unchecked = [e.get("name") for e in manifest["log"] if "checks" not in e]
    return {"ok": not problems, "problems": problems, "unchecked": unchecked}


def _alignment_problems(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-segment sides whose parts do not follow the log's segments (a manifest edited by hand)."""
    found = []
    for key, kind in part_kinds().items():
        entry = manifest.get(key)
        problem = alignment_problem(kind.label, entry, manifest["log"]) if isinstance(entry, dict) else None
        if problem:
            found.append({"entry": entry.get("name"), "kind": key, "file": None, "problem": problem})
    return found


def _damaged_parts(root: Path, kind: PartKind, entry: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                                               list[dict[str, Any]]]:
    """The problems of a per-segment side and its damaged parts (by checksum, then by loading each part)."""
    folder, checks, problems, parts = root / SEGMENTS, entry.get("checks", {}), [], []
    for part in entry.get("parts", []):
        found = [{"entry": entry.get("name"), "kind": kind.key, "file": name, "problem": problem}
                 for name in part["roles"].values() if (problem := _file_problem(folder, name, checks.get(name)))]
        if not found:
            try:
                kind.require()
                kind.load_part(root, part, entry)
            except ImportError:
                pass
            except (IndexFormatError, KeyError, TypeError) as exc:
                found = [{"entry": entry.get("name"), "kind": kind.key, "file": None, "problem": str(exc)}]
        problems += found
        parts += [part] if found else []
    return problems, parts


def _realign_side(root: Path, new: dict[str, Any], kind: PartKind, entry: dict[str, Any],
                  damaged: list[dict[str, Any]], renamed: dict[str, str], side_model: Any) -> str:
    """Put in ``new`` a ``kind`` side following its log (see the module docstring); returns what was done."""
    bad = {p["name"] for p in damaged}
    kept = [{**p, "segment": renamed.get(p["segment"], p["segment"])} for p in entry["parts"] if p["name"] not in bad]
    segments = {e["name"] for e in new["log"] if e.get("kind") == "segment"}
    missing = segments - {p["segment"] for p in kept}
    if missing and side_model is None:
        new.pop(kind.key, None)
        return "dropped"
    new[kind.key] = next_entry(kind, root, {**entry, "parts": kept}, new["log"], None,
                               lambda: new_name(kind.prefix, new["generation"]), lambda: side_model)
    return "rebuilt" if missing else "realigned"


def _intact_docs(root: Path, entry: dict[str, Any], problems: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """A damaged segment's documents, if its ``docs.jsonl`` itself is intact (else ``None``)."""
    name = entry["roles"]["docs"]
    if any(p["file"] == name for p in problems):
        return None
    try:
        docs = load_jsonl(root / SEGMENTS / name)
    except (IndexFormatError, OSError):
        return None
    ok = len(docs) == entry.get("docs") and all(isinstance(d.get("id"), str) and isinstance(d.get("text"), str)
                                                for d in docs)
    return docs if ok else None


def _readable_ids(path: Path) -> list[str]:
    """Ids of the lines of a damaged ``docs.jsonl`` that still parse."""
    ids = []
    with contextlib.suppress(OSError):
        for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                row = json.loads(line)
                if isinstance(row, dict) and isinstance(row.get("id"), str):
                    ids.append(row["id"])
    return ids


def _rebuild_lexical(root: Path, new: dict[str, Any], snap: Any) -> str:
    """Put a lexical side of ``snap``'s documents in ``new`` (``"rebuilt"``), or remove it from ``new``
    when bm25s is not installed (``"dropped"``: the next lexical or hybrid search builds it)."""
    from sentencekit.search.lexical import lexical_available, write_lexical

    if not lexical_available():
        new.pop("lexical", None)
        return "dropped"
    new["lexical"] = write_lexical(root, new_name("lex", new["generation"]), snap)
    return "rebuilt"


def repair(root: str | os.PathLike, model: Any = None, *, sparse_model: Any = None, multivector_model: Any = None,
           lock_timeout: float = 60.0) -> dict[str, Any]:
    """Commit a manifest without the damaged entries of the index at ``root`` (see the module
    docstring for what happens to each kind). With ``model`` (the one the index was built with),
    segments whose texts survive are re-embedded instead of dropped; with ``sparse_model`` /
    ``multivector_model``, damaged parts of that side are re-encoded. Returns ``{"repaired", "problems",
    "reembedded": [ids], "lost_ids": [ids to add again], "lost_unknown": n documents whose ids are
    unreadable, "dropped_deletes": n ids that are deleted no more, "moved": [files], "lexical": None |
    "rebuilt" | "dropped", "sparse" and "multivector": None | "realigned" | "rebuilt" | "dropped"}``.

    >>> repair("faq-index", model)["lost_ids"]   # doctest: +SKIP
    []
    """
    from sentencekit.search.model_check import check_bi_encoder, embed, mismatch_error, mismatches

    root = Path(root)
    report: dict[str, Any] = {"repaired": False, "problems": [], "reembedded": [], "lost_ids": [],
                              "lost_unknown": 0, "dropped_deletes": 0, "moved": [], "lexical": None,
                              "sparse": None, "multivector": None}
    with writer_lock(root, lock_timeout):
        manifest = read_manifest(root)
        if model is not None:
            check_bi_encoder(model)
            problems = mismatches(manifest, model)
            if problems:
                raise mismatch_error(f"the embedding index at {root}", problems, manifest)
        kinds, side_models = part_kinds(), {"sparse": sparse_model, "multivector": multivector_model}
        for key, side_model in side_models.items():
            if side_model is not None:
                kinds[key].check_model(side_model)
                if side_mismatches(kinds[key], manifest, side_model):
                    problems = side_mismatches(kinds[key], manifest, side_model)
                    raise mismatch_error(f"the embedding index at {root}", problems)
        remove_uncommitted(root, manifest)
        folder, log, dropped = root / SEGMENTS, [], []
        lost: list[tuple[int, list[str]]] = []  # (log position, ids) of dropped segments
        renamed: dict[str, str] = {}  # re-embedded segment -> its new name (same documents, same rows)
        for position, entry in enumerate(manifest["log"]):
            problems = _entry_problems(root, entry)
            report["problems"].extend(problems)
            if not problems:
                log.append(entry)
                continue
            dropped.append(entry)
            if entry.get("kind") != "segment":
                report["dropped_deletes"] += int(entry.get("count", 0))
                continue
            docs = _intact_docs(root, entry, problems)
            if docs is not None:
                if model is not None:
                    vectors = embed(model, manifest, row_inputs(docs), query=False)
                    log.append(write_segment(root, new_name("seg", manifest["generation"] + 1), vectors, docs,
                                             manifest["precision"]))
                    renamed[entry["name"]] = log[-1]["name"]
                    report["reembedded"].extend(d["id"] for d in docs)
                    continue
                ids = [d["id"] for d in docs]
            else:
                ids = _readable_ids(folder / entry["roles"]["docs"])
                report["lost_unknown"] += max(0, int(entry.get("docs", 0)) - len(ids))
            lost.append((position, ids))
        lexical = manifest.get("lexical") if isinstance(manifest.get("lexical"), dict) else None
        lexical_problems = _entry_problems(root, lexical) if lexical is not None else []
        report["problems"].extend(lexical_problems)
        if lexical_problems:
            dropped.append(lexical)
        sides = {key: manifest[key] for key in kinds if isinstance(manifest.get(key), dict)}
        damaged_parts = {}
        for key, side in sides.items():
            side_problems, damaged_parts[key] = _damaged_parts(root, kinds[key], side)
            report["problems"].extend(side_problems)
            dropped.extend({"files": list(p["roles"].values())} for p in damaged_parts[key])
        report["problems"].extend(_alignment_problems(manifest))
        if not dropped and not _alignment_problems(manifest):
            return report
        # a document deleted after its segment was written is not lost: nobody wants it back
        kept = {id(e) for e in log}
        for position, ids in lost:
            deleted = {i for e in manifest["log"][position + 1:] if e.get("kind") == "delete" and id(e) in kept
                       for i in load_deletes(root, e)}
            report["lost_ids"].extend(i for i in ids if i not in deleted)
        new = {**manifest, "generation": manifest["generation"] + 1, "log": add_missing_checks(root, log)}
        new_snap = SegmentCache(root).snapshot(new)
        new["counts"] = new_snap.counts()
        if lexical is not None:
            report["lexical"] = _rebuild_lexical(root, new, new_snap)
        for key, side in sides.items():
            report[key] = _realign_side(root, new, kinds[key], side, damaged_parts[key], renamed, side_models[key])
        write_manifest(root, new)
        (root / DAMAGED).mkdir(exist_ok=True)
        for name in sorted({n for e in dropped for n in e.get("files", [])}):
            with contextlib.suppress(FileNotFoundError):
                os.replace(folder / name, root / DAMAGED / name)
                report["moved"].append(f"{DAMAGED}/{name}")
        remove_uncommitted(root, new)  # the replaced (undamaged) lexical files
        report["repaired"] = True
    return report
