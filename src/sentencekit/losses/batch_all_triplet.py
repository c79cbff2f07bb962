"""BatchAllTripletLoss: every valid (anchor, positive, negative) triplet of the batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from sentencekit.losses._base import EmbeddingLoss, check_columns, function_name, labels_on
from sentencekit.losses.batch_hard_triplet import BatchHardTripletLossDistanceFunction, triplet_mask


class BatchAllTripletLoss(EmbeddingLoss):
    """One text column with an integer class label. ``relu(d(a, p) - d(a, n) + margin)`` over all valid triplets
    of the batch, averaged over the triplets that still have a positive loss.

    >>> import torch
    >>> from sentencekit import SentenceTransformer
    >>> from sentencekit.losses import BatchAllTripletLoss
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")       # doctest: +SKIP
    >>> loss = BatchAllTripletLoss(model)                                           # doctest: +SKIP
    >>> texts = ["refund please", "money back", "sunny today", "warm weather"]
    >>> loss([model.tokenize(texts)], torch.tensor([0, 0, 1, 1])).backward()        # doctest: +SKIP
    """

    citation = """
@misc{hermans2017defense,
    title={In Defense of the Triplet Loss for Person Re-Identification},
    author={Alexander Hermans and Lucas Beyer and Bastian Leibe},
    year={2017},
    eprint={1703.07737},
    archivePrefix={arXiv},
    primaryClass={cs.CV}
}
"""

    def __init__(self, model: nn.Module,
                 distance_metric: Callable[[Tensor], Tensor] = BatchHardTripletLossDistanceFunction.eucledian_distance,
                 margin: float = 5) -> None:
        super().__init__(model)
        self.distance_metric = distance_metric
        self.triplet_margin = margin

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        check_columns(self, embeddings, 1)
        distances = self.distance_metric(embeddings[0])
        labels = labels_on(labels, distances, self).view(-1)
        # [i, j, k] = d(i, j) - d(i, k) + margin, kept for valid triplets only
        losses = distances[:, :, None] - distances[:, None, :] + self.triplet_margin
        losses = torch.relu(losses * triplet_mask(labels).to(losses.dtype))
        num_positive = (losses > 1e-16).sum()
        return losses.sum() / (num_positive + 1e-16)

    def get_config_dict(self) -> dict[str, Any]:
        return {"distance_metric": function_name(self.distance_metric), "margin": self.triplet_margin}
