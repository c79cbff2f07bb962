"""BatchHardTripletLoss: for each text, its hardest positive against its hardest negative in the batch."""

from __future__ import annotations

import torch
from torch import Tensor

from sentencekit.losses._triplet import (
    BatchHardTripletLossDistanceFunction,
    BatchTripletLoss,
    anchor_negative_mask,
    anchor_positive_mask,
)

__all__ = ["BatchHardTripletLoss", "BatchHardTripletLossDistanceFunction"]


class BatchHardTripletLoss(BatchTripletLoss):
    """One text column with an integer class label (use a group-by-label batch sampler, so every batch has
    several texts per label). For each text: ``relu(max d(positive) - min d(negative) + margin)``, averaged.

    >>> import torch
    >>> from sentencekit import SentenceTransformer
    >>> from sentencekit.losses import BatchHardTripletLoss
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")       # doctest: +SKIP
    >>> loss = BatchHardTripletLoss(model)                                          # doctest: +SKIP
    >>> texts = ["refund please", "money back", "sunny today", "warm weather"]
    >>> loss([model.tokenize(texts)], torch.tensor([0, 0, 1, 1])).backward()        # doctest: +SKIP
    """

    def triplet_loss(self, distances: Tensor, labels: Tensor) -> Tensor:
        hardest_positive = (anchor_positive_mask(labels) * distances).max(dim=1).values
        # push same-label entries above every distance so that min() picks a true negative
        not_negative = (~anchor_negative_mask(labels)).to(distances.dtype)
        hardest_negative = (distances + distances.max(dim=1, keepdim=True).values * not_negative).min(dim=1).values
        return torch.relu(hardest_positive - hardest_negative + self.triplet_margin).mean()
