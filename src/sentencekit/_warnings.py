"""Warnings that point at the user's line, not at sentencekit's internals."""

from __future__ import annotations

import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_WRAPPERS = (os.path.join("torch", "utils", "_contextlib.py"),)


def external_stacklevel() -> int:
    """The ``stacklevel`` for ``warnings.warn`` called by this function's caller that names the first
    frame outside sentencekit (and outside torch's decorator wrappers)."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None:
        filename = frame.f_code.co_filename
        if not (filename.startswith(_PACKAGE_DIR) or filename.endswith(_WRAPPERS)):
            return level
        frame = frame.f_back
        level += 1
    return level
