"""On-disk layout of an :class:`~sentencekit.search.index.EmbeddingIndex` and its crash-safe writes.

::

    index/
      manifest.json              the commit point: settings + the ordered log of committed files
      .lock                      writers take an exclusive flock on it (readers never lock)
      segments/
        seg-000002-1a2b3c4d.f32.npy        float32 vectors, one row per document (or chunk)
        seg-000002-1a2b3c4d.int8.npy       int8 codes + .int8scale.npy (precision="int8")
        seg-000002-1a2b3c4d.ubin.npy       packed sign bits (precision="ubinary")
        seg-000002-1a2b3c4d.docs.jsonl     {"id", "text", "metadata", "chunks"} per document
        del-000003-5e6f7a8b.json           ids deleted by one delete() call
        lex-000003-9c0d1e2f.*              the lexical (BM25) side, if kept: see search/lexical.py
        spr-000002-3a4b5c6d.*              a segment's learned-sparse rows, if kept: see search/sparse_side.py
        mvr-000002-7e8f9a0b.*              a segment's token vectors, if kept: see search/late_interaction_side.py
      ann/hnsw-<key>.faiss       cached HNSW graph (rebuilt when the committed log changes)

Each log entry records the size and SHA-256 of its files (``"checks"``). Opening compares sizes (one
``stat`` per file, so a truncated or emptied file is caught before it is memory-mapped); checksums are
compared only by :func:`sentencekit.search.integrity.verify`, since they read every byte. Entries of
indexes written before these records existed get them on the next commit.

Committed files are never modified. A write takes the lock, removes leftovers of interrupted writes
(files the manifest does not list), writes new files through temporary files and ``os.replace``, and
commits by replacing ``manifest.json`` last. A process killed at any point leaves the previous manifest,
so the index opens with every committed document; readers only open files a manifest lists.

Test hook: if the environment variable ``SENTENCEKIT_INDEX_PAUSE_BEFORE_COMMIT`` holds a number of
seconds, writers sleep that long between writing their files and committing the manifest (used by the
tests to kill a writer inside that window).

>>> manifest_path("/data/my-index").name
'manifest.json'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sentencekit.files import atomic_write, atomic_write_bytes
from sentencekit.search.index_errors import IndexFormatError, IndexLockTimeout

FORMAT = "sentencekit-embedding-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LOCK = ".lock"
SEGMENTS = "segments"
ANN = "ann"
PAUSE_ENV = "SENTENCEKIT_INDEX_PAUSE_BEFORE_COMMIT"


def manifest_path(root: str | os.PathLike) -> Path:
    """Where an index folder keeps its manifest.

    >>> manifest_path("idx").as_posix()
    'idx/manifest.json'
    """
    return Path(root) / MANIFEST


def read_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """Parse and check an index's manifest.

    >>> read_manifest("/no/such/index")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sentencekit.search.index_errors.IndexFormatError: No embedding index at /no/such/index (no manifest.json). ...
    """
    path = manifest_path(root)
    if Path(root).is_file():
        raise IndexFormatError(f"{root} is a file, not an embedding index folder; pass the folder an index was "
                               f"built into (`sentencekit index build {root} --out FOLDER` builds one from it)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexFormatError(f"No embedding index at {root} (no {MANIFEST}). Create one with "
                               "EmbeddingIndex.create(path, model), or on the command line with "
                               f"`sentencekit index build CORPUS_FILE --out {root}`.") from None
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise IndexFormatError(
            f"The embedding index at {root} is damaged: {MANIFEST} cannot be read ({type(exc).__name__}: {exc}). "
            "The manifest is the index's table of contents and has no copy: restore the folder from a "
            "backup, or rebuild the index (e.g. `sentencekit index build`).") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexFormatError(f"{path} is not a sentencekit embedding index manifest (or it is damaged). "
                               "Restore the folder from a backup, or rebuild the index.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexFormatError(f"{path} has format version {manifest.get('format_version')}; this sentencekit "
                               f"reads version {FORMAT_VERSION}. Upgrade sentencekit or rebuild the index.")
    if not isinstance(manifest.get("log"), list) or not all(isinstance(e, dict) for e in manifest["log"]):
        raise IndexFormatError(f"The embedding index at {root} is damaged: {MANIFEST} has no valid \"log\" list. "
                               "Restore the folder from a backup, or rebuild the index.")
    return manifest


def write_manifest(root: str | os.PathLike, manifest: dict[str, Any]) -> None:
    """Commit ``manifest`` atomically (temporary file, fsync, ``os.replace``, fsync of the folder).

    >>> write_manifest(folder, {"format": FORMAT, "format_version": FORMAT_VERSION})  # doctest: +SKIP
    """
    _fsync_dir(Path(root) / SEGMENTS)  # the renames of the files it lists are durable first
    atomic_write_bytes(manifest_path(root), (json.dumps(manifest, indent=1) + "\n").encode("utf-8"))
    _fsync_dir(Path(root))


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not supported on every platform / filesystem
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


@contextlib.contextmanager
def writer_lock(root: str | os.PathLike, timeout: float) -> Iterator[None]:
    """Hold the index's exclusive writer lock; wait up to ``timeout`` seconds for another writer.

    >>> with writer_lock(folder, timeout=10):  # doctest: +SKIP
    ...     pass
    """
    path = Path(root) / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                raise IndexLockTimeout(
                    f"Timed out after {timeout:g} s waiting for the writer lock of the index at {root} "
                    f"({path}): another process is adding to or deleting from it. Retry when it is done, "
                    "or pass a larger lock_timeout to EmbeddingIndex.open/create.")
            time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def pause_before_commit() -> None:
    """Test hook: sleep ``$SENTENCEKIT_INDEX_PAUSE_BEFORE_COMMIT`` seconds, if set."""
    seconds = os.environ.get(PAUSE_ENV)
    if seconds:
        time.sleep(float(seconds))


def new_name(prefix: str, generation: int) -> str:
    """A fresh file stem, e.g. ``seg-000007-1a2b3c4d``.

    >>> new_name("seg", 7)[:11]
    'seg-000007-'
    """
    return f"{prefix}-{generation:06d}-{uuid.uuid4().hex[:8]}"


def save_npy(path: Path, array: np.ndarray) -> None:
    """Write an ``.npy`` file through a temporary file and ``os.replace``.

    >>> save_npy(Path("/tmp/x.npy"), np.zeros(3))  # doctest: +SKIP
    """
    atomic_write(path, lambda f: np.save(f, np.ascontiguousarray(array), allow_pickle=False))


def save_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write JSON lines atomically.

    >>> save_jsonl(Path("/tmp/docs.jsonl"), [{"id": "1"}])  # doctest: +SKIP
    """
    data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    atomic_write_bytes(path, data.encode("utf-8"))


def damaged(path: Path, problem: str) -> IndexFormatError:
    """The one wording of "this file of an index is damaged": which file, what is wrong, what to do.

    >>> str(damaged(Path("idx/segments/seg-1.f32.npy"), "it is empty"))  # doctest: +ELLIPSIS
    'The embedding index at idx is damaged: segments/seg-1.f32.npy: it is empty. Run ...'
    """
    root = path.parent.parent if path.parent.name == SEGMENTS else path.parent
    return IndexFormatError(
        f"The embedding index at {root} is damaged: {path.relative_to(root).as_posix()}: {problem}. Run "
        f"`sentencekit index verify {root}` to list every damaged file, then `sentencekit index repair "
        f"{root}` (EmbeddingIndex.repair) to drop what is lost (add --reembed --model MODEL to re-embed "
        "segments whose stored texts survive), or restore the folder from a backup.")


def file_record(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of a file, as a log entry records them.

    >>> file_record(Path("segments/seg-000001-1a2b3c4d.f32.npy"))  # doctest: +SKIP
    {'bytes': 1664, 'sha256': '9f86d0...'}
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def check_size(path: Path, record: dict[str, Any] | None) -> None:
    """Raise :class:`IndexFormatError` if ``path`` is not the size its log entry recorded (no record:
    an index written before sizes were recorded; nothing to compare). ``FileNotFoundError`` passes
    through: a concurrent compaction may have removed the file, and the caller re-reads the manifest.

    >>> check_size(Path("segments/seg-000001-1a2b3c4d.f32.npy"), {"bytes": 1664})  # doctest: +SKIP
    """
    if record is None:
        return
    size = path.stat().st_size
    if size != record["bytes"]:
        state = "it is empty" if size == 0 else f"it has {size} bytes"
        raise damaged(path, f"{state}, the manifest recorded {record['bytes']} (cut short or overwritten)")


def load_npy(path: Path) -> np.ndarray:
    """Memory-map a committed ``.npy`` file (pages are read on demand; the file is never changed).
    A file that is not a readable ``.npy`` raises :class:`IndexFormatError` naming it.

    >>> load_npy(Path("segments/seg-000001-1a2b3c4d.f32.npy"))  # doctest: +SKIP
    """
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, EOFError, OSError) as exc:  # cut short: mmap length / EOF; garbage: bad header
        raise damaged(path, f"not a readable .npy array ({type(exc).__name__}: {exc})") from exc


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a committed JSON-lines file; a line that is not a JSON object raises
    :class:`IndexFormatError` naming the file and line.

    >>> load_jsonl(Path("segments/seg-000001-1a2b3c4d.docs.jsonl"))  # doctest: +SKIP
    """
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise ValueError(f"line {number} is a {type(row).__name__}, not a JSON object")
                    rows.append(row)
    except FileNotFoundError:
        raise
    except json.JSONDecodeError as exc:
        raise damaged(path, f"line {number} is not valid JSON ({exc.msg})") from exc
    except (ValueError, OSError) as exc:  # UnicodeDecodeError is a ValueError
        raise damaged(path, str(exc)) from exc
    return rows


def committed_entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest's log entries, then its lexical entry (``"lexical"``) and the entries of its per-segment
    sides (``"sparse"``, ``"multivector"``), if the index keeps them.

    >>> [e["name"] for e in committed_entries({"log": [{"name": "seg-1"}], "lexical": {"name": "lex-1"}})]
    ['seg-1', 'lex-1']
    """
    sides = [manifest.get(key) for key in ("lexical", "sparse", "multivector")]
    return list(manifest.get("log", [])) + [side for side in sides if isinstance(side, dict)]


def committed_files(manifest: dict[str, Any]) -> set[str]:
    """Every file name under ``segments/`` that the manifest refers to (its log and its sides' entries).

    >>> sorted(committed_files({"log": [{"kind": "delete", "files": ["del-1.json"]}]}))
    ['del-1.json']
    """
    return {name for entry in committed_entries(manifest) for name in entry.get("files", [])}


def remove_uncommitted(root: str | os.PathLike, manifest: dict[str, Any]) -> list[str]:
    """Delete files under ``segments/`` that ``manifest`` does not list: temporary files and files of
    writes that never committed. Call only while holding the writer lock.

    >>> remove_uncommitted(folder, read_manifest(folder))  # doctest: +SKIP
    []
    """
    folder = Path(root) / SEGMENTS
    keep = committed_files(manifest)
    removed = []
    for entry in folder.iterdir() if folder.is_dir() else []:
        if entry.name not in keep and entry.is_file():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
            removed.append(entry.name)
    return removed
