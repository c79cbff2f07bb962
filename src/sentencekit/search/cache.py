"""Corpus embeddings computed once and reused: stored under a key made of the model's fingerprint, the
corpus content and the encode settings, so a changed model or corpus is never served stale vectors."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from sentencekit.files import atomic_write_bytes


def default_cache_dir() -> Path:
    root = os.environ.get("SENTENCEKIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "sentencekit"
    )
    return Path(root) / "corpus-embeddings"


def corpus_embeddings(
    model: Any,
    texts: list[str],
    *,
    cache_dir: str | Path | None = None,
    show_progress_bar: bool | None = None,
    **encode_kwargs: Any,
) -> tuple[np.ndarray, bool]:
    """Return ``(embeddings, from_cache)`` for ``texts``, encoding them only on the first call."""
    from sentencekit.fingerprint import model_fingerprint

    settings = {"fingerprint": model_fingerprint(model), "encode": encode_kwargs,
                "max_seq_length": model.max_seq_length}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    key = digest.hexdigest()[:32]
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"{key}.npy"
    if path.is_file():
        try:
            embeddings = np.load(path, allow_pickle=False)
            if embeddings.shape[0] == len(texts):
                return embeddings, True
        except (OSError, ValueError):
            pass  # a damaged cache entry is recomputed and replaced
    embeddings = model.encode_document(texts, show_progress_bar=show_progress_bar, **encode_kwargs)
    buffer = io.BytesIO()
    np.save(buffer, embeddings, allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())
    return embeddings, False
