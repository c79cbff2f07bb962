"""``SparseMultipleNegativesRankingLoss``: InfoNCE with in-batch negatives on sparse embeddings (dot product,
scale 1), as sentence-transformers 6.2. The math is the dense loss's
(:class:`~sentencekit.losses.MultipleNegativesRankingLoss`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from sentencekit.losses.multiple_negatives_ranking import MultipleNegativesRankingLoss
from sentencekit.losses.sparse._inner_loss import InnerLossOnly
from sentencekit.similarity import dot_score


class SparseMultipleNegativesRankingLoss(InnerLossOnly, MultipleNegativesRankingLoss):
    """(anchor, positive[, negative_1, ...]) columns, no labels: cross-entropy of ``scale * dot(anchor_i,
    candidates)`` with target ``i`` over all positives and negatives of the batch. ``scale=1`` because
    SPLADE dot products are already large (tens). Use it inside ``SpladeLoss`` / ``CSRLoss``: ``forward``
    raises ``AttributeError``.

    ``directions``, ``partition_mode``, ``hardness_mode`` / ``hardness_strength`` and ``gather_across_devices``
    are the dense loss's (sentence-transformers 6.2's options; see
    :class:`~sentencekit.losses.MultipleNegativesRankingLoss`).

    >>> from sentencekit.losses.sparse import SparseMultipleNegativesRankingLoss, SpladeLoss
    >>> inner = SparseMultipleNegativesRankingLoss(model)                           # doctest: +SKIP
    >>> loss = SpladeLoss(model, inner, document_regularizer_weight=3e-5,
    ...                   query_regularizer_weight=5e-5)                            # doctest: +SKIP
    """

    def __init__(self, model: nn.Module, scale: float = 1.0,
                 similarity_fct: Callable[[Tensor, Tensor], Tensor] = dot_score, gather_across_devices: bool = False,
                 directions: Sequence[str] = ("query_to_doc",), partition_mode: str = "joint",
                 hardness_mode: str | None = None, hardness_strength: float = 0.0) -> None:
        super().__init__(model, scale=scale, similarity_fct=similarity_fct,
                         gather_across_devices=gather_across_devices, directions=directions,
                         partition_mode=partition_mode, hardness_mode=hardness_mode,
                         hardness_strength=hardness_strength)
