"""ContrastiveLoss: pull similar pairs together, push dissimilar pairs beyond a margin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from sentencekit.losses._base import EmbeddingLoss, check_columns, labels_on
from sentencekit.losses.triplet import metric_name


def _euclidean(x: Tensor, y: Tensor) -> Tensor:
    return F.pairwise_distance(x, y, p=2)


def _manhattan(x: Tensor, y: Tensor) -> Tensor:
    return F.pairwise_distance(x, y, p=1)


def _cosine_distance(x: Tensor, y: Tensor) -> Tensor:
    return 1 - F.cosine_similarity(x, y)


class SiameseDistanceMetric:
    """Row-wise distance functions for :class:`ContrastiveLoss` and :class:`OnlineContrastiveLoss`."""

    EUCLIDEAN = staticmethod(_euclidean)
    MANHATTAN = staticmethod(_manhattan)
    COSINE_DISTANCE = staticmethod(_cosine_distance)


class ContrastiveLoss(EmbeddingLoss):
    """(text1, text2) columns with a 0/1 label (1 = similar). With ``d`` the distance:
    ``0.5 * (label * d**2 + (1 - label) * relu(margin - d)**2)``, averaged (``size_average``) or summed.

    >>> import torch
    >>> from sentencekit import SentenceTransformer
    >>> from sentencekit.losses import ContrastiveLoss
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")       # doctest: +SKIP
    >>> loss = ContrastiveLoss(model)                                               # doctest: +SKIP
    >>> columns = [["How do I get a refund?", "Is it sunny?"], ["Refunds take 5 days.", "Refunds take 5 days."]]
    >>> loss([model.tokenize(texts) for texts in columns], torch.tensor([1, 0])).backward()  # doctest: +SKIP
    """

    citation = """
@inproceedings{hadsell2006dimensionality,
    author={Hadsell, R. and Chopra, S. and LeCun, Y.},
    booktitle={2006 IEEE Computer Society Conference on Computer Vision and Pattern Recognition (CVPR'06)},
    title={Dimensionality Reduction by Learning an Invariant Mapping},
    year={2006},
    volume={2},
    number={},
    pages={1735-1742},
    doi={10.1109/CVPR.2006.100}
}
"""

    def __init__(self, model: nn.Module,
                 distance_metric: Callable[[Tensor, Tensor], Tensor] = SiameseDistanceMetric.COSINE_DISTANCE,
                 margin: float = 0.5, size_average: bool = True) -> None:
        super().__init__(model)
        self.distance_metric = distance_metric
        self.margin = margin
        self.size_average = size_average

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        check_columns(self, embeddings, 2)
        distances = self.distance_metric(embeddings[0], embeddings[1])
        labels = labels_on(labels, distances, self, distances.dtype)
        losses = 0.5 * (labels * distances.pow(2) + (1 - labels) * F.relu(self.margin - distances).pow(2))
        return losses.mean() if self.size_average else losses.sum()

    def get_config_dict(self) -> dict[str, Any]:
        return {"distance_metric": metric_name(SiameseDistanceMetric, self.distance_metric),
                "margin": self.margin, "size_average": self.size_average}
