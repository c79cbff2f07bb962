"""Distillation losses for multi-vector (ColBERT) models, as sentence-transformers 6.2's
``MultiVectorDistillKLDivLoss`` and ``MultiVectorMarginMSELoss``: a teacher's scores of each query's candidate
documents as labels, the student's MaxSim (or another training scorer) against them. The math is the dense
losses' (:func:`~sentencekit.losses.distill_kl_div.distillation_kl`,
:func:`~sentencekit.losses.margin_mse.teacher_margins`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from sentencekit.late_interaction_scoring import colbert_kd_scores, colbert_scores_pairwise
from sentencekit.losses._base import labels_on
from sentencekit.losses._citations import MARGIN_MSE_CITATION
from sentencekit.losses._token_batches import stack_token_columns
from sentencekit.losses.distill_kl_div import distillation_kl, set_temperatures, temperature_config
from sentencekit.losses.margin_mse import teacher_margins
from sentencekit.losses.multivector.token_columns import TokenEmbeddingLoss

logger = logging.getLogger(__name__)

COLBERTV2_CITATION = """
@inproceedings{santhanam-etal-2022-colbertv2,
    title = "ColBERTv2: Effective and Efficient Retrieval via Lightweight Late Interaction",
    author = "Santhanam, Keshav and Khattab, Omar and Saad-Falcon, Jon and Potts, Christopher and Zaharia, Matei",
    booktitle = "Proceedings of the 2022 Conference of the North American Chapter of the Association for
                 Computational Linguistics: Human Language Technologies",
    year = "2022",
    publisher = "Association for Computational Linguistics",
}
"""


def check_teacher_scores(teacher: Tensor, temperature: float, loss_name: str) -> None:
    """``ValueError`` for NaN teacher scores (every gradient would be NaN); a warning when the teacher softmax
    at ``temperature`` underflows to exactly 0 for some candidates (they then carry no gradient)."""
    scores = teacher.detach().float()
    if scores.isnan().any():
        raise ValueError(f"{loss_name}: the teacher scores contain NaN, so the loss and every gradient would be NaN. "
                         "Check the label / score column holding them.")
    if scores.isinf().any():  # -inf marks a candidate left out on purpose
        return
    collapsed = int((torch.softmax(scores / temperature, dim=-1) == 0).sum())
    if collapsed:
        spread = float((scores.max(dim=-1).values - scores.min(dim=-1).values).max())
        logger.warning("%s: teacher_temperature=%s underflows %d of %d teacher probabilities to 0 (rows span up to "
                       "%.1f): those candidates carry no gradient. Raise teacher_temperature above %.3g.", loss_name,
                       temperature, collapsed, scores.numel(), spread, spread / 100)


class MultiVectorDistillKLDivLoss(TokenEmbeddingLoss):
    """(query, document_1, ..., document_N) columns, ``N >= 2``, the teacher's scores ``[B, N]`` as labels:
    ``KL(softmax(teacher / T_t) || softmax(student / T_s)) * T_s**2`` (batch mean), ``student =
    similarity_fct(queries, documents)`` ``[B, N]`` (default
    :func:`~sentencekit.late_interaction_scoring.colbert_kd_scores`; ``XTRKDScores`` for XTR). Both temperatures
    default to ``temperature``. ColBERTv2 (Santhanam et al. 2022) distils a cross-encoder this way. The teacher
    scores are checked on the first batch (NaN raises; a softmax that underflows is warned about).

    Raises ``ValueError`` for a temperature that is not a positive finite number, fewer than 3 columns, or
    labels that are not ``[B, N]``.

    >>> from sentencekit.losses.multivector import MultiVectorDistillKLDivLoss
    >>> loss = MultiVectorDistillKLDivLoss(model, temperature=2.0)                   # doctest: +SKIP
    """

    citation = COLBERTV2_CITATION

    def __init__(self, model: Any, *, similarity_fct: Callable[..., Tensor] | None = None, temperature: float = 1.0,
                 student_temperature: float | None = None, teacher_temperature: float | None = None,
                 mini_batch_size: int | None = None) -> None:
        super().__init__(model, mini_batch_size)
        self.similarity_fct = similarity_fct if similarity_fct is not None else colbert_kd_scores
        set_temperatures(self, temperature, student_temperature, teacher_temperature)
        self._checked_teacher = False

    def forward(self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None) -> Tensor:
        if len(sentence_features) < 3:
            raise ValueError(f"{type(self).__name__} expects at least 3 input columns (query, document_1, ..., "
                             f"document_N with N >= 2), got {len(sentence_features)}: a softmax over one document is "
                             "constant, so the loss and its gradient would be 0.")
        queries, query_mask, documents, document_masks = self.embed_columns(sentence_features, 3)
        teacher = labels_on(labels, queries, self, torch.float32)
        expected = (len(queries), len(documents))
        if tuple(teacher.shape) != expected:
            raise ValueError(f"{type(self).__name__} needs the teacher's score of every candidate: labels of shape "
                             f"{expected} (batch, documents), got {tuple(teacher.shape)}.")
        if not self._checked_teacher:
            self._checked_teacher = True
            check_teacher_scores(teacher, self.teacher_temperature, type(self).__name__)
        stacked, stacked_mask = stack_token_columns(documents, document_masks)
        student = self.similarity_fct(queries, stacked, queries_mask=query_mask, documents_mask=stacked_mask)
        return distillation_kl(student, teacher.to(student.device), self.student_temperature,
                               self.teacher_temperature)

    def get_config_dict(self) -> dict[str, Any]:
        config = super().get_config_dict()
        return {"similarity_fct": config["similarity_fct"], **temperature_config(self),
                "mini_batch_size": self.mini_batch_size}


class MultiVectorMarginMSELoss(TokenEmbeddingLoss):
    """(query, positive, negative_1, ...) columns with the teacher's margins ``T(q, p) - T(q, n_j)`` (``[B,
    n]``, or ``[B]`` for one negative) or its raw scores ``[B, 1 + n]`` (turned into margins) as labels: MSE
    between those and the student's ``s(q, p) - s(q, n_j)``, ``s = similarity_fct`` (pairwise; default
    :func:`~sentencekit.late_interaction_scoring.colbert_scores_pairwise`). Hofstätter et al. 2021.

    Raises ``ValueError`` for fewer than 3 columns or labels of another shape.

    >>> from sentencekit.losses.multivector import MultiVectorMarginMSELoss
    >>> loss = MultiVectorMarginMSELoss(model)                                       # doctest: +SKIP
    """

    citation = MARGIN_MSE_CITATION

    def __init__(self, model: Any, *, similarity_fct: Callable[..., Tensor] | None = None,
                 mini_batch_size: int | None = None) -> None:
        super().__init__(model, mini_batch_size)
        self.similarity_fct = similarity_fct if similarity_fct is not None else colbert_scores_pairwise
        self.loss_fct = nn.MSELoss()

    def forward(self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None) -> Tensor:
        queries, query_mask, documents, document_masks = self.embed_columns(sentence_features, 3)
        labels = labels_on(labels, queries, self, torch.float32)
        margins = teacher_margins(labels, len(queries), len(documents) - 1, type(self).__name__)
        positive = self.similarity_fct(queries, documents[0], queries_mask=query_mask,
                                       documents_mask=document_masks[0])
        student = torch.stack([positive - self.similarity_fct(queries, negative, queries_mask=query_mask,
                                                              documents_mask=mask)
                               for negative, mask in zip(documents[1:], document_masks[1:])], dim=1)
        return self.loss_fct(student, margins.detach().to(student.device, student.dtype))


__all__ = ["MultiVectorDistillKLDivLoss", "MultiVectorMarginMSELoss", "check_teacher_scores"]
