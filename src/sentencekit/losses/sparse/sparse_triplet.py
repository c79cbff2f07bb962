"""``SparseTripletLoss`` (sentence-transformers 6.2): the dense :class:`~sentencekit.losses.TripletLoss` on
sparse embeddings."""

from __future__ import annotations

from sentencekit.losses.sparse._inner_loss import InnerLossOnly
from sentencekit.losses.triplet import TripletLoss


class SparseTripletLoss(InnerLossOnly, TripletLoss):
    """(anchor, positive, negative) columns: ``relu(d(a, p) - d(a, n) + triplet_margin)`` averaged (Euclidean
    distance, margin 5 by default; Hermans et al. 2017). Use it inside ``SpladeLoss`` / ``CSRLoss``:
    ``forward`` raises ``AttributeError``."""
