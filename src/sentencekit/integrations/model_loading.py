"""How the framework adapters accept a model: a loaded sentencekit model as it is, or a path / Hub name."""

from __future__ import annotations

import os
from typing import Any


def load_model(model: Any, family: str) -> Any:
    """``model`` itself, or, for a ``str`` / ``os.PathLike``, ``sentencekit.<family>(model)`` (``family``:
    ``"SentenceTransformer"`` or ``"CrossEncoder"``). Raises what the model class raises for a bad folder."""
    if not isinstance(model, (str, os.PathLike)):
        return model
    import sentencekit

    return getattr(sentencekit, family)(os.fspath(model))
