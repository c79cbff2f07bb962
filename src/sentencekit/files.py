"""Reading and writing the files a model folder is made of, with errors that name the file.

Every write of a model folder goes through :func:`atomic_directory`, so a failed save never leaves a
half-written folder where a good one was.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


class ModelFormatError(ValueError):
    """A model folder or one of its files is missing, malformed or not understood."""


def read_json(path: str | os.PathLike, *, what: str = "config") -> Any:
    """Parse a JSON file; a missing or malformed file raises an error that names its path."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelFormatError(f"Missing {what} file: {path}") from None
    except OSError as exc:
        raise ModelFormatError(f"Cannot read {what} file {path}: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFormatError(
            f"Malformed JSON in {what} file {path} (line {exc.lineno}, column {exc.colno}): {exc.msg}. "
            "Fix or restore the file."
        ) from None


def read_json_if_exists(path: str | os.PathLike, *, what: str = "config") -> Any | None:
    return read_json(path, what=what) if Path(path).is_file() else None


def write_json(path: str | os.PathLike, data: Any, *, indent: int = 2, sort_keys: bool = False) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=indent, sort_keys=sort_keys)
        f.write("\n")


def load_state_dict(folder: str | os.PathLike, *, required: bool = True) -> dict | None:
    """Load a module's weights: ``model.safetensors`` first, ``pytorch_model.bin`` only through
    ``torch.load(weights_only=True)`` (never an arbitrary pickle)."""
    import torch

    folder = Path(folder)
    st_path = folder / "model.safetensors"
    if st_path.is_file():
        from safetensors.torch import load_file

        try:
            return load_file(str(st_path))
        except Exception as exc:  # safetensors raises its own error types
            raise ModelFormatError(f"Cannot read weights file {st_path}: {exc}") from exc
    bin_path = folder / "pytorch_model.bin"
    if bin_path.is_file():
        try:
            return torch.load(str(bin_path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelFormatError(
                f"Cannot read weights file {bin_path} with torch.load(weights_only=True): {exc}. "
                "Only plain tensor checkpoints are loaded; convert it to model.safetensors."
            ) from exc
    if required:
        raise ModelFormatError(
            f"Missing weights in {folder}: expected model.safetensors (or pytorch_model.bin)."
        )
    return None


def save_state_dict(state_dict: dict, folder: str | os.PathLike, *, safe_serialization: bool = True) -> None:
    import torch

    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    if safe_serialization:
        from safetensors.torch import save_file

        save_file(tensors, str(Path(folder) / "model.safetensors"), metadata={"format": "pt"})
    else:
        torch.save(tensors, str(Path(folder) / "pytorch_model.bin"))


#: Written last into a save's temporary folder: a ``.NAME.tmp-*`` folder holding it is a complete model.
SAVE_COMPLETE_MARKER = ".sentencekit-save-complete"

#: Test seam for fault injection: called with the step name ("before_swap", "between_renames",
#: "after_swap") at each point a killed process would leave a different state on disk.
_fault_hook: Callable[[str], None] | None = None


def _step(name: str) -> None:
    if _fault_hook is not None:
        _fault_hook(name)


def _leftovers(target: Path, kind: str) -> list[Path]:
    """``.NAME.tmp-*`` (kind "tmp") or ``.NAME.old-*`` (kind "old") folders beside ``target``, newest first."""
    prefix = f".{target.name}.{kind}-"
    try:
        found = [p for p in target.parent.iterdir() if p.name.startswith(prefix) and p.is_dir()]
    except OSError:  # the parent is missing or unreadable: nothing to recover
        return []
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def recover_directory(target: str | os.PathLike) -> Path | None:
    """Finish a save of ``target`` that was killed between its two renames (old folder moved aside, new
    one not yet in place), so that ``target`` is a model again. Returns the folder moved to ``target``, or
    ``None`` when there was nothing to do (``target`` exists, or no save left anything beside it).

    A complete new folder (``.NAME.tmp-*`` holding :data:`SAVE_COMPLETE_MARKER`, written after every other
    file) wins, the newest if several; otherwise the previous model (``.NAME.old-*``) is put back. An
    incomplete ``.tmp-*`` folder is never used. Nothing is deleted here: the next save cleans leftovers.
    """
    target = Path(target).absolute()
    if target.exists() or target.is_symlink():
        return None
    complete = [t for t in _leftovers(target, "tmp") if (t / SAVE_COMPLETE_MARKER).is_file()]
    for candidate in complete + _leftovers(target, "old"):
        try:
            os.rename(candidate, target)
        except OSError:
            if target.exists():  # another process recovered it first
                return None
            continue
        with contextlib.suppress(FileNotFoundError):
            (target / SAVE_COMPLETE_MARKER).unlink()
        return candidate
    return None


def _clean_leftovers(target: Path, keep: Callable[[str], bool] | None, *, spare: Path) -> None:
    """Remove the ``.NAME.tmp-*`` / ``.NAME.old-*`` folders of killed saves of ``target`` (except
    ``spare``, this save's own folder), first carrying the entries ``keep`` names (a user's notes) out of
    old folders into ``target`` when it lacks them: a save killed after its swap had not carried them yet."""
    for old in _leftovers(target, "old"):
        if keep is not None and target.is_dir():
            for entry in old.iterdir():
                if keep(entry.name) and entry.name != SAVE_COMPLETE_MARKER and not (target / entry.name).exists():
                    os.rename(entry, target / entry.name)
        shutil.rmtree(old, ignore_errors=True)
    for tmp in _leftovers(target, "tmp"):
        if tmp != spare:
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(
    target: str | os.PathLike, *, keep: Callable[[str], bool] | None = None
) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``target``; on success it replaces ``target``.

    Entries of an existing ``target`` that the new content does not have and for which ``keep(name)``
    is true (e.g. a user's notes, training checkpoints) are carried over into the new folder.
    On any exception the temporary folder is removed and ``target`` is left exactly as it was.

    The swap is two renames (``target`` -> ``.NAME.old-*``, ``.NAME.tmp-*`` -> ``target``). A process killed
    between them leaves no ``target``; :func:`recover_directory` (run by loading and by the next save)
    finishes the swap, using :data:`SAVE_COMPLETE_MARKER` to know the new folder was fully written. The
    next save also removes the leftovers of killed saves. Two processes saving to the same ``target`` at
    the same time are not supported (one may remove the other's temporary folder; the target stays whole).
    """
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_directory(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        # Last file written: from here on a killed save's tmp folder is a complete model.
        with open(tmp / SAVE_COMPLETE_MARKER, "w", encoding="utf-8") as f:
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists() and not target.is_dir():
        shutil.rmtree(tmp, ignore_errors=True)
        raise NotADirectoryError(f"Cannot save a model to {target}: it exists and is not a folder.")
    _step("before_swap")
    old = None
    if target.exists():
        # Move the old folder aside first; rename is atomic on one filesystem.
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(target, old)
    _step("between_renames")
    try:
        os.rename(tmp, target)
    except BaseException:
        if old is not None:
            os.rename(old, target)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _step("after_swap")
    if old is not None and keep is not None:
        # Carried over after the swap: if this is interrupted they are still in the old folder, and the
        # next save's _clean_leftovers carries them.
        for entry in old.iterdir():
            if keep(entry.name) and not (target / entry.name).exists():
                os.rename(entry, target / entry.name)
    with contextlib.suppress(FileNotFoundError):
        (target / SAVE_COMPLETE_MARKER).unlink()
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    _clean_leftovers(target, keep, spare=tmp)


def _file_mode(path: Path) -> int:
    """The permission bits of ``path`` if it exists, else those ``open(path, "w")`` would give: 0666 less
    the process umask (read from ``/proc`` on Linux: ``os.umask`` can only be read by setting it, which
    races with other threads; 022 where it cannot be read)."""
    with contextlib.suppress(OSError):
        return stat.S_IMODE(path.stat().st_mode)
    umask = 0o022
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as f:
        umask = next((int(line.split()[1], 8) for line in f if line.startswith("Umask:")), umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None]) -> None:
    """Write a file through a temporary file, fsync and a rename, so readers never see half of it.
    ``write`` receives the open binary file (it may stream: nothing is held in memory here)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        # mkstemp makes the file 0600; the file we stand for gets the mode a plain open() would give it
        # (or keeps the one it had), so other users and tools can read saved models, indexes and outputs
        os.fchmod(fd, _file_mode(path))
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """:func:`atomic_write` of a bytes object."""
    atomic_write(path, lambda f: f.write(data))
