"""Helpers users know from ``sentence_transformers.util``: similarity functions, quantization and search
(``semantic_search``, ``paraphrase_mining``, ``community_detection``, ``semantic_search_faiss``).

>>> from sentencekit.util import cos_sim
>>> cos_sim([[1.0, 0.0]], [[0.0, 1.0]])
tensor([[0.]])
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from sentencekit.devices import default_device as get_device_name
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
    cos_sim,
    dot_score,
    euclidean_sim,
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
    """L2-normalise each row."""
    return F.normalize(to_tensor(embeddings), p=2, dim=1)


def truncate_embeddings(embeddings, truncate_dim: int | None):
    """Matryoshka slice to the first ``truncate_dim`` dimensions (no renormalisation)."""
    return embeddings[..., :truncate_dim]


__all__ = [
    "mine_hard_negatives",
    "cos_sim", "pytorch_cos_sim", "dot_score", "euclidean_sim", "manhattan_sim",
    "pairwise_cos_sim", "pairwise_dot_score", "pairwise_euclidean_sim", "pairwise_manhattan_sim",
    "pairwise_angle_sim", "normalize_embeddings", "truncate_embeddings", "quantize_embeddings",
    "get_device_name", "semantic_search", "information_retrieval", "paraphrase_mining",
    "paraphrase_mining_embeddings", "community_detection", "semantic_search_faiss",
]
