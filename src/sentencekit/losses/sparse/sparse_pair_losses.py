"""Scored-pair losses on sparse embeddings, as sentence-transformers 6.2's ``SparseCoSENTLoss``,
``SparseAnglELoss`` and ``SparseCosineSimilarityLoss``. The math is the dense losses'
(:mod:`sentencekit.losses.cosent`, :mod:`~sentencekit.losses.angle`, :mod:`~sentencekit.losses.cosine_similarity`).

They train cosine scores, so, as in sentence-transformers 6.2, building one sets the model's
``similarity_fn_name`` to ``"cosine"``: evaluation and the saved model then score by the similarity trained."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from sentencekit.losses.angle import AnglELoss
from sentencekit.losses.cosent import CoSENTLoss
from sentencekit.losses.cosine_similarity import CosineSimilarityLoss
from sentencekit.losses.sparse._inner_loss import InnerLossOnly
from sentencekit.similarity import pairwise_cos_sim


def score_by_cosine(model: Any) -> None:
    """Set ``model.similarity_fn_name = "cosine"`` (no model: nothing to set, e.g. a loss used on tensors)."""
    if model is not None:
        model.similarity_fn_name = "cosine"


class SparseCoSENTLoss(InnerLossOnly, CoSENTLoss):
    """(text1, text2) columns with a float score: ``log(1 + sum_{s_i < s_j} exp(scale * (sim_i - sim_j)))``
    (Su 2022; ``scale=20``, ``pairwise_cos_sim``). Sets the model's ``similarity_fn_name`` to ``"cosine"``.
    Use it inside ``SpladeLoss`` / ``CSRLoss``: ``forward`` raises ``AttributeError``."""

    def __init__(self, model: Any, scale: float = 20.0,
                 similarity_fct: Callable[[Tensor, Tensor], Tensor] = pairwise_cos_sim) -> None:
        score_by_cosine(model)
        super().__init__(model, scale=scale, similarity_fct=similarity_fct)


class SparseAnglELoss(InnerLossOnly, AnglELoss):
    """CoSENT with the AnglE angle similarity (Li & Li 2023; ``scale=20``). Sets the model's
    ``similarity_fn_name`` to ``"cosine"``. Use it inside ``SpladeLoss`` / ``CSRLoss``: ``forward`` raises
    ``AttributeError``."""

    def __init__(self, model: Any, scale: float = 20.0) -> None:
        score_by_cosine(model)
        super().__init__(model, scale=scale)


class SparseCosineSimilarityLoss(InnerLossOnly, CosineSimilarityLoss):
    """(text1, text2) columns with a float score: ``loss_fct(cos_score_transformation(cos(u, v)), score)``
    (MSE by default). Sets the model's ``similarity_fn_name`` to ``"cosine"``. Use it inside ``SpladeLoss`` /
    ``CSRLoss``: ``forward`` raises ``AttributeError``."""

    def __init__(self, model: Any, loss_fct: nn.Module = nn.MSELoss(),  # noqa: B008 (as in sentence-transformers)
                 cos_score_transformation: nn.Module = nn.Identity()) -> None:  # noqa: B008
        score_by_cosine(model)
        super().__init__(model, loss_fct=loss_fct, cos_score_transformation=cos_score_transformation)
