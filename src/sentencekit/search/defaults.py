"""Where sentencekit keeps what it builds for you: ``$SENTENCEKIT_HOME`` (default
``$XDG_CACHE_HOME/sentencekit`` or ``~/.cache/sentencekit``)."""

from __future__ import annotations

from pathlib import Path

from sentencekit.spec.home import sentencekit_home

RERANKER_NAME = "minilm-stsb-reranker"


def default_reranker_dir() -> Path:
    """Folder of the reranker that `examples/train_stsb_reranker.py --install` trains; the search main
    job uses it when it is there."""
    return sentencekit_home() / "models" / RERANKER_NAME


def installed_reranker() -> Path | None:
    folder = default_reranker_dir()
    return folder if (folder / "config.json").is_file() else None
