"""Where exported graphs of a model folder are cached, and the content key that names them.

An export is reused only for the exact folder content it came from (:func:`folder_key`); it lives beside
the model (``onnx/``) when that is writable, else under ``$SENTENCEKIT_HOME/onnx``. Torch-free.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from sentencekit.spec.home import sentencekit_home

#: bumped whenever the exported graph or its metadata change meaning (old exports are then ignored)
EXPORT_FORMAT = 4
_SKIP_DIRS = {"onnx", "openvino", ".git", "__pycache__", "checkpoints"}
_SKIP_FILES = {"README.md"}
_SMALL = 1 << 20  # files up to 1 MiB are hashed whole; larger ones by size, mtime and sampled bytes
_SAMPLE = 1 << 16


def folder_key(folder: Path, variant: str = "") -> str:
    """A key for everything in ``folder`` that decides a model's outputs (configs, tokenizer, weights),
    so an export is reused only for the exact model it came from. Large files count by size, mtime and
    sampled bytes (hashing a 400 MB weights file on every load would cost more than loading it).

    >>> folder_key(Path("my-model"))                                   # doctest: +SKIP
    '3f0c9b6f1e2d4a5b'
    """
    digest = hashlib.sha256(f"sentencekit-onnx:{EXPORT_FORMAT}:{variant}".encode())
    folder = Path(folder)
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(files):
            if name in _SKIP_FILES or name.startswith("."):
                continue
            path = Path(root) / name
            try:
                stat = path.stat()
            except OSError:
                continue
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + str(stat.st_size).encode())
            with open(path, "rb") as f:
                if stat.st_size <= _SMALL:
                    digest.update(f.read())
                else:
                    digest.update(str(stat.st_mtime_ns).encode())
                    digest.update(f.read(_SAMPLE))
                    f.seek(stat.st_size // 2)
                    digest.update(f.read(_SAMPLE))
                    f.seek(max(0, stat.st_size - _SAMPLE))
                    digest.update(f.read(_SAMPLE))
    return digest.hexdigest()[:16]


def export_locations(folder: Path) -> list[Path]:
    """Where exports of ``folder`` are looked for, in order: beside the model, then the cache folder."""
    return [Path(folder) / "onnx", sentencekit_home() / "onnx"]


def find_export(folder: Path, file_name: str) -> Path | None:
    for place in export_locations(folder):
        candidate = place / file_name
        if candidate.is_file():
            return candidate
    return None


def writable_export_dir(folder: Path) -> Path:
    """The first export location that can be written (beside the model if possible)."""
    for place in export_locations(folder):
        try:
            place.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".probe-", dir=place)
            os.close(fd)
            os.unlink(probe)
            return place
        except OSError:
            continue
    raise PermissionError(f"Cannot write the ONNX export: neither {folder / 'onnx'} nor "
                          f"{sentencekit_home() / 'onnx'} is writable (set SENTENCEKIT_HOME).")


def find_transformer_onnx(folder: Path, file_name: str | None = None) -> Path | None:
    """A transformer-only ONNX file as sentence-transformers / optimum export it: ``file_name`` if
    given (relative to the folder), else ``onnx/model.onnx`` or ``model.onnx``."""
    if file_name:
        path = Path(folder) / file_name
        if not path.is_file():
            raise FileNotFoundError(f"ONNX file {path} not found.")
        return path
    for candidate in (Path(folder) / "onnx" / "model.onnx", Path(folder) / "model.onnx"):
        if candidate.is_file():
            return candidate
    return None
