"""Search over embedded corpora: corpus files and embeddings that are computed once and reused, the
``sentence_transformers.util`` search functions, and :class:`EmbeddingIndex`, a stored corpus index.

Submodules are imported on first use, so ``import sentencekit.search`` stays light.

>>> from sentencekit.search import EmbeddingIndex  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "EmbeddingIndex": "sentencekit.search.index",
    "IndexMismatchError": "sentencekit.search.index_errors",
    "IndexLockTimeout": "sentencekit.search.index_errors",
    "IndexFormatError": "sentencekit.search.index_errors",
    "IndexReadOnlyError": "sentencekit.search.index_errors",
    "semantic_search": "sentencekit.search.retrieval",
    "paraphrase_mining": "sentencekit.search.retrieval",
    "paraphrase_mining_embeddings": "sentencekit.search.retrieval",
    "community_detection": "sentencekit.search.community",
    "semantic_search_faiss": "sentencekit.search.faiss_search",
    "reciprocal_rank_fusion": "sentencekit.search.fusion",
    "weighted_score_fusion": "sentencekit.search.fusion",
    "chunk_texts": "sentencekit.search.chunking",
    "Chunk": "sentencekit.search.chunking",
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'sentencekit.search' has no attribute {name!r}")
    value = getattr(importlib.import_module(target), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))


__all__ = sorted(_LAZY)
