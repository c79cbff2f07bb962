"""Progress of one-time slow steps (the first ONNX export of a model, int8 calibration): one plain line per
step, through the ``sentencekit.progress`` logger at INFO. The command line shows them on stderr
(:func:`show_on_stderr`); library users see them once logging is configured at INFO.

>>> step("exporting %s to ONNX (one time)...", "all-MiniLM-L6-v2")   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import sys
from typing import Any

logger = logging.getLogger("sentencekit.progress")


def step(message: str, *args: Any) -> None:
    """Report one step of a slow one-time job (``%``-style arguments, as ``logging``)."""
    logger.info(message, *args)


class _CurrentStderr(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is at each record (tests and tools swap it), not as it was at set-up."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it; sys.stderr is read at each emit
        pass


def show_on_stderr() -> None:
    """Print progress lines as they are (no level or logger name) on stderr; idempotent. The CLI calls it."""
    if any(getattr(h, "_sentencekit_progress", False) for h in logger.handlers):
        return
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._sentencekit_progress = True  # type: ignore[attr-defined]  # marks ours, for idempotence
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # shown once here, not again by a root handler the user configured


def model_label(folder: Any) -> str:
    """A model folder's short name for progress lines (its parent's for a generic ``model`` sub-folder)."""
    from pathlib import Path

    path = Path(folder)
    return path.parent.name if path.name == "model" and path.parent.name else path.name
