"""OnlineContrastiveLoss: ContrastiveLoss on the hard pairs of the batch only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from sentencekit.losses._base import EmbeddingLoss, check_columns, labels_on
from sentencekit.losses.contrastive import SiameseDistanceMetric
from sentencekit.losses.triplet import metric_name


class OnlineContrastiveLoss(EmbeddingLoss):
    """(text1, text2) columns with a 0/1 label. Like :class:`ContrastiveLoss`, but only hard pairs count:
    positives farther apart than the closest negative, and negatives closer than the farthest positive.

    >>> import torch
    >>> from sentencekit import SentenceTransformer
    >>> from sentencekit.losses import OnlineContrastiveLoss
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")       # doctest: +SKIP
    >>> loss = OnlineContrastiveLoss(model)                                         # doctest: +SKIP
    >>> columns = [["How do I get a refund?", "Is it sunny?"], ["Refunds take 5 days.", "Refunds take 5 days."]]
    >>> loss([model.tokenize(texts) for texts in columns], torch.tensor([1, 0])).backward()  # doctest: +SKIP
    """

    def __init__(self, model: nn.Module,
                 distance_metric: Callable[[Tensor, Tensor], Tensor] = SiameseDistanceMetric.COSINE_DISTANCE,
                 margin: float = 0.5) -> None:
        super().__init__(model)
        self.distance_metric = distance_metric
        self.margin = margin

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        check_columns(self, embeddings, 2)
        distances = self.distance_metric(embeddings[0], embeddings[1])
        labels = labels_on(labels, distances, self)
        negatives = distances[labels == 0]
        positives = distances[labels == 1]
        # hard negatives: closer than the farthest positive; hard positives: farther than the closest negative
        negative_pairs = negatives[negatives < (positives.max() if len(positives) > 1 else negatives.mean())]
        positive_pairs = positives[positives > (negatives.min() if len(negatives) > 1 else positives.mean())]
        positive_loss = positive_pairs.pow(2).sum()
        negative_loss = F.relu(self.margin - negative_pairs).pow(2).sum()
        return positive_loss + negative_loss

    def get_config_dict(self) -> dict[str, Any]:
        return {"distance_metric": metric_name(SiameseDistanceMetric, self.distance_metric), "margin": self.margin}
