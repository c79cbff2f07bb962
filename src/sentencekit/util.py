"""Helpers users know from ``sentence_transformers.util``: similarity functions, quantization and search
(``semantic_search``, ``paraphrase_mining``, ``community_detection``, ``semantic_search_faiss``).

>>> from sentencekit.util import cos_sim
>>> cos_sim([[1.0, 0.0]], [[0.0, 1.0]])
tensor([[0.]])
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from sentencekit.devices import default_device as get_device_name
from sentencekit.late_interaction_tensors import maxsim, maxsim_pairwise, mean_maxsim, mean_maxsim_pairwise
from sentencekit.logging_handler import LoggingHandler
from sentencekit.quantization import quantize_embeddings
from sentencekit.search.community import community_detection
from sentencekit.search.faiss_search import semantic_search_faiss
from sentencekit.search.retrieval import (
    information_retrieval,
    paraphrase_mining,
    paraphrase_mining_embeddings,
    semantic_search,
)
from sentencekit.similarity import (
    SimilarityFunction,
    cos_sim,
    dot_score,
    euclidean_sim,
    is_vector,
    manhattan_sim,
    pairwise_angle_sim,
    pairwise_cos_sim,
    pairwise_dot_score,
    pairwise_euclidean_sim,
    pairwise_manhattan_sim,
    to_tensor,
)
from sentencekit.training.hard_negatives import mine_hard_negatives

pytorch_cos_sim = cos_sim


def normalize_embeddings(embeddings: Tensor) -> Tensor:
    """L2-normalise each row: ``[n, dim]`` -> float tensor ``[n, dim]``; one vector ``[dim]`` stays ``[dim]``
    (sentence-transformers raises on 1-D here; a 1-D input is one embedding everywhere else)."""
    t = to_tensor(embeddings)  # always [n, dim]: a 1-D input became one row
    out = F.normalize(t, p=2, dim=1)
    return out[0] if is_vector(embeddings) else out


def truncate_embeddings(embeddings, truncate_dim: int | None):
    """Matryoshka slice to the first ``truncate_dim`` dimensions (no renormalisation): ``[..., dim]`` ->
    ``[..., truncate_dim]``, any number of leading dimensions (a 1-D vector stays 1-D)."""
    return embeddings[..., :truncate_dim]


def batch_to_device(batch: dict[str, Any], target_device: Any) -> dict[str, Any]:
    """Move the tensors of a features dict to ``target_device``; other values stay as they are."""
    return {key: value.to(target_device) if isinstance(value, Tensor) else value for key, value in batch.items()}


def is_datasets_available() -> bool:
    """Whether the ``datasets`` package (the ``train`` extra) is installed."""
    return importlib.util.find_spec("datasets") is not None


def is_accelerate_available() -> bool:
    """Whether the ``accelerate`` package (the ``train`` extra) is installed."""
    return importlib.util.find_spec("accelerate") is not None


def is_training_available() -> bool:
    """Whether the trainers can run: ``pip install sentencekit[train]`` installs what they need."""
    return is_datasets_available() and is_accelerate_available()


__all__ = [
    "mine_hard_negatives", "SimilarityFunction", "LoggingHandler", "batch_to_device",
    "is_datasets_available", "is_accelerate_available", "is_training_available",
    "cos_sim", "pytorch_cos_sim", "dot_score", "euclidean_sim", "manhattan_sim",
    "pairwise_cos_sim", "pairwise_dot_score", "pairwise_euclidean_sim", "pairwise_manhattan_sim",
    "pairwise_angle_sim", "normalize_embeddings", "truncate_embeddings", "quantize_embeddings",
    "get_device_name", "semantic_search", "information_retrieval", "paraphrase_mining",
    "paraphrase_mining_embeddings", "community_detection", "semantic_search_faiss",
    "maxsim", "maxsim_pairwise", "mean_maxsim", "mean_maxsim_pairwise",
]
