"""TripletLoss: the anchor must be closer to the positive than to the negative by a margin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sentencekit.losses._base import EmbeddingLoss, check_columns, function_name
from sentencekit.losses._triplet import TRIPLET_CITATION


def _cosine_distance(x: Tensor, y: Tensor) -> Tensor:
    return 1 - F.cosine_similarity(x, y)


# Exact norms of the difference, as sentence-transformers 6.2 (``-pairwise_euclidean_sim`` /
# ``-pairwise_manhattan_sim``): F.pairwise_distance adds eps=1e-6 to every coordinate, which over a
# 30,522-dim sparse vector shifts a Manhattan distance by about 0.03.
def _euclidean_distance(x: Tensor, y: Tensor) -> Tensor:
    return torch.linalg.vector_norm(x - y, dim=-1)


def _manhattan_distance(x: Tensor, y: Tensor) -> Tensor:
    return (x - y).abs().sum(dim=-1)


class TripletDistanceMetric:
    """Row-wise distance functions for :class:`TripletLoss` (``TripletDistanceMetric.EUCLIDEAN(x, y)``)."""

    COSINE = staticmethod(_cosine_distance)
    EUCLIDEAN = staticmethod(_euclidean_distance)
    MANHATTAN = staticmethod(_manhattan_distance)


def metric_name(namespace: type, fn: Callable[..., Any]) -> str:
    """``"TripletDistanceMetric.EUCLIDEAN"`` for a member of a distance-function namespace, else the function name."""
    for name, member in vars(namespace).items():
        if isinstance(member, staticmethod) and member.__func__ is fn:
            return f"{namespace.__name__}.{name}"
    return function_name(fn)


class TripletLoss(EmbeddingLoss):
    """(anchor, positive, negative) columns, no labels: ``relu(d(a, p) - d(a, n) + triplet_margin)``, averaged.

    >>> from sentencekit import SentenceTransformer
    >>> from sentencekit.losses import TripletDistanceMetric, TripletLoss
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")       # doctest: +SKIP
    >>> loss = TripletLoss(model, distance_metric=TripletDistanceMetric.COSINE, triplet_margin=0.3)  # doctest: +SKIP
    >>> columns = [["How do I get a refund?"], ["Refunds take 5 days."], ["Paris is mild today."]]
    >>> loss([model.tokenize(texts) for texts in columns], None).backward()         # doctest: +SKIP
    """

    citation = TRIPLET_CITATION

    def __init__(self, model: nn.Module,
                 distance_metric: Callable[[Tensor, Tensor], Tensor] = TripletDistanceMetric.EUCLIDEAN,
                 triplet_margin: float = 5) -> None:
        super().__init__(model)
        self.distance_metric = distance_metric
        self.triplet_margin = triplet_margin

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        check_columns(self, embeddings, 3)
        anchor, positive, negative = embeddings
        losses = F.relu(self.distance_metric(anchor, positive) - self.distance_metric(anchor, negative)
                        + self.triplet_margin)
        return losses.mean()

    def get_config_dict(self) -> dict[str, Any]:
        return {"distance_metric": metric_name(TripletDistanceMetric, self.distance_metric),
                "triplet_margin": self.triplet_margin}
