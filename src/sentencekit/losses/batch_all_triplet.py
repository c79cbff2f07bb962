"""BatchAllTripletLoss: every valid (anchor, positive, negative) triplet of the batch."""

from __future__ import annotations

import torch
from torch import Tensor

from sentencekit.losses._triplet import BatchTripletLoss, triplet_mask


class BatchAllTripletLoss(BatchTripletLoss):
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

    def triplet_loss(self, distances: Tensor, labels: Tensor) -> Tensor:
        # [i, j, k] = d(i, j) - d(i, k) + margin, kept for valid triplets only
        losses = distances[:, :, None] - distances[:, None, :] + self.triplet_margin
        losses = torch.relu(losses * triplet_mask(labels).to(losses.dtype))
        num_positive = (losses > 1e-16).sum()
        return losses.sum() / (num_positive + 1e-16)
