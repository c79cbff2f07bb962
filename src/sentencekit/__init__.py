"""sentencekit: text embeddings, reranking and training, compatible with sentence-transformers.

Heavy libraries (torch, transformers) are imported only when a model class is first used, so that
``import sentencekit`` and the CLI start fast; ``SentenceTransformer(..., backend="onnx")`` (and
``CrossEncoder``) run on ONNX Runtime without importing them at all.

>>> from sentencekit import SentenceTransformer            # doctest: +SKIP
>>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
>>> model.encode(["How do I get a refund?"]).shape
(1, 384)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY = {
    "SentenceTransformer": "sentencekit.families.embedder",
    "EncodeInfo": "sentencekit.pipeline.batching",
    "CrossEncoder": "sentencekit.families.reranker",
    "EmbeddingIndex": "sentencekit.search.index",
    "mine_hard_negatives": "sentencekit.training.hard_negatives",
    "SimilarityFunction": "sentencekit.similarity",
    "quantize_embeddings": "sentencekit.quantization",
    "util": "sentencekit.util",
    "models": "sentencekit.modules",
    "losses": "sentencekit.losses",
    "evaluation": "sentencekit.evaluation",
}

if TYPE_CHECKING:  # pragma: no cover
    from sentencekit import modules as models
    from sentencekit import util
    from sentencekit.families.embedder import SentenceTransformer
    from sentencekit.families.reranker import CrossEncoder
    from sentencekit.pipeline.batching import EncodeInfo
    from sentencekit.quantization import quantize_embeddings
    from sentencekit.search.index import EmbeddingIndex
    from sentencekit.similarity import SimilarityFunction
    from sentencekit.training.hard_negatives import mine_hard_negatives


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'sentencekit' has no attribute {name!r}")
    module = importlib.import_module(target)
    value = module if name in ("util", "models", "losses", "evaluation") else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))


__all__ = ["__version__", "SentenceTransformer", "CrossEncoder", "EmbeddingIndex", "mine_hard_negatives",
           "EncodeInfo", "SimilarityFunction", "quantize_embeddings", "util", "models", "losses", "evaluation"]
