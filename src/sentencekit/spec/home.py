"""Where sentencekit keeps what it builds for you (ONNX exports, stored indexes, installed models):
``$SENTENCEKIT_HOME``, default ``$XDG_CACHE_HOME/sentencekit`` or ``~/.cache/sentencekit``."""

from __future__ import annotations

import os
from pathlib import Path


def sentencekit_home() -> Path:
    """The folder sentencekit writes its caches to (not created here)."""
    root = os.environ.get("SENTENCEKIT_HOME")
    if root:
        return Path(root).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))) / "sentencekit"


__all__ = ["sentencekit_home"]
