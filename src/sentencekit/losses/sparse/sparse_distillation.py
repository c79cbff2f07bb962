"""Distillation losses on sparse embeddings, as sentence-transformers 6.2's ``SparseMarginMSELoss``,
``SparseDistillKLDivLoss`` and ``SparseMSELoss``. The math is the dense losses'
(:mod:`sentencekit.losses.margin_mse`, :mod:`~sentencekit.losses.distill_kl_div`, :mod:`~sentencekit.losses.mse`)."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from sentencekit.losses.distill_kl_div import DistillKLDivLoss
from sentencekit.losses.margin_mse import MarginMSELoss
from sentencekit.losses.mse import MSELoss
from sentencekit.losses.sparse._inner_loss import InnerLossOnly
from sentencekit.similarity import pairwise_dot_score


class SparseMarginMSELoss(InnerLossOnly, MarginMSELoss):
    """(query, positive, negative[, ...]) columns, teacher margins as labels (``[batch]`` or
    ``[batch, num_negatives]``): MSE between ``dot(q, p) - dot(q, n)`` and the teacher's margin (Hofstätter
    et al. 2021). Use it inside ``SpladeLoss`` / ``CSRLoss``: ``forward`` raises ``AttributeError``."""


class SparseDistillKLDivLoss(InnerLossOnly, DistillKLDivLoss):
    """(query, positive, negative_1, ...) columns, teacher scores ``[batch, 1 + num_negatives]`` as labels:
    ``KL(softmax(teacher / teacher_temperature) || softmax(student / student_temperature)) * temperature**2``
    (both temperatures default to ``temperature``, 2.0 here as in sentence-transformers' sparse loss). Use
    it inside ``SpladeLoss`` / ``CSRLoss``: ``forward`` raises ``AttributeError``."""

    def __init__(self, model: nn.Module, similarity_fct: Callable[[Tensor, Tensor], Tensor] = pairwise_dot_score,
                 temperature: float = 2.0, student_temperature: float | None = None,
                 teacher_temperature: float | None = None) -> None:
        super().__init__(model, similarity_fct=similarity_fct, temperature=temperature,
                         student_temperature=student_temperature, teacher_temperature=teacher_temperature)


class SparseMSELoss(MSELoss):
    """(text[, ...]) columns, the teacher's embedding ``[batch, dim]`` as label: MSE of each column's sparse
    embedding to it (Reimers & Gurevych 2020). The one sparse loss that may be trained on its own."""
