"""Fast CPU inference without torch: ONNX Runtime models with sentencekit's API.

``SentenceTransformer(name, backend="onnx")`` and ``CrossEncoder(name, backend="onnx")`` return the
classes defined here. The first load exports the whole pipeline (Transformer -> Pooling -> Dense ->
Normalize) to one ONNX graph, cached beside the model (``onnx/sentencekit_<key>.onnx``) or in
``$SENTENCEKIT_HOME/onnx``; later loads need only ``tokenizers``, ``onnxruntime`` and NumPy. Static-embedding
models (model2vec) need no graph: they run as a NumPy table lookup (``StaticSentenceTransformer``); Router
models run each route its own way (``RoutedSentenceTransformer``).

>>> from sentencekit import SentenceTransformer
>>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2", backend="onnx")  # doctest: +SKIP
>>> model.encode(["How do I get a refund?"]).shape                                         # doctest: +SKIP
(1, 384)
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "OnnxSentenceTransformer": "sentencekit.runtime.embedder",
    "OnnxCrossEncoder": "sentencekit.runtime.reranker",
    "StaticSentenceTransformer": "sentencekit.runtime.static",
    "RoutedSentenceTransformer": "sentencekit.runtime.router",
    "cpu_features": "sentencekit.runtime.cpu",
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'sentencekit.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(target), name)


__all__ = list(_LAZY)
