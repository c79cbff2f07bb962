"""DistillKLDivLoss: match the student's score distribution over candidates to a teacher's (KL divergence)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sentencekit.losses._base import EmbeddingLoss, function_name, labels_on
from sentencekit.similarity import pairwise_dot_score


class DistillKLDivLoss(EmbeddingLoss):
    """(query, positive, negative_1, ...) columns (at least two candidates: a softmax over one is constant);
    the label holds the teacher's scores of every (query, candidate) pair, shape ``[batch, num_candidates]``.
    Both score lists become distributions: ``softmax(student / student_temperature)`` and
    ``softmax(teacher / teacher_temperature)`` (both temperatures default to ``temperature``); the loss is
    ``KL(teacher || student) * student_temperature**2`` (batch mean; Hinton et al. 2015: the factor keeps the
    gradient scale independent of the temperature), as sentence-transformers 6.2. Raises ``ValueError`` for
    a temperature that is not a positive finite number, fewer than 3 columns, or labels of another shape.

    >>> import torch
    >>> from sentencekit import SentenceTransformer
    >>> from sentencekit.losses import DistillKLDivLoss
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")       # doctest: +SKIP
    >>> loss = DistillKLDivLoss(model)                                              # doctest: +SKIP
    >>> columns = [["How do I get a refund?"], ["Refunds take 5 days."], ["Paris is mild today."]]
    >>> loss([model.tokenize(texts) for texts in columns], torch.tensor([[0.9, 0.1]])).backward()  # doctest: +SKIP
    """

    citation = """
@misc{lin2020distillingdenserepresentationsranking,
    title={Distilling Dense Representations for Ranking using Tightly-Coupled Teachers},
    author={Sheng-Chieh Lin and Jheng-Hong Yang and Jimmy Lin},
    year={2020},
    eprint={2010.11386},
    archivePrefix={arXiv},
    primaryClass={cs.IR},
    url={https://arxiv.org/abs/2010.11386},
}
"""

    def __init__(self, model: nn.Module,
                 similarity_fct: Callable[[Tensor, Tensor], Tensor] = pairwise_dot_score,
                 temperature: float = 1.0, student_temperature: float | None = None,
                 teacher_temperature: float | None = None) -> None:
        super().__init__(model)
        self.similarity_fct = similarity_fct
        set_temperatures(self, temperature, student_temperature, teacher_temperature)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        if len(embeddings) < 3:
            raise ValueError(f"{type(self).__name__} expects at least 3 columns (query, positive, negative_1, ...), "
                             f"got {len(embeddings)}: a softmax over one candidate is constant, so the loss is 0.")
        query = embeddings[0]
        student = torch.stack([self.similarity_fct(query, other) for other in embeddings[1:]], dim=1)
        teacher = labels_on(labels, student, self, student.dtype).detach()
        if teacher.shape != student.shape:
            raise ValueError(f"{type(self).__name__} needs one teacher score per candidate column: labels of shape "
                             f"{tuple(student.shape)}, got {tuple(teacher.shape)}.")
        return distillation_kl(student, teacher, self.student_temperature, self.teacher_temperature)

    def get_config_dict(self) -> dict[str, Any]:
        return {"similarity_fct": function_name(self.similarity_fct), **temperature_config(self)}


def set_temperatures(loss: Any, temperature: float, student_temperature: float | None,
                     teacher_temperature: float | None) -> None:
    """Set ``loss.temperature`` / ``student_temperature`` / ``teacher_temperature`` (both default to
    ``temperature``); ``ValueError`` naming the loss for one that is not a positive finite number."""
    loss.temperature = temperature
    loss.student_temperature = student_temperature if student_temperature is not None else temperature
    loss.teacher_temperature = teacher_temperature if teacher_temperature is not None else temperature
    for name in ("temperature", "student_temperature", "teacher_temperature"):
        if not 0 < getattr(loss, name) < math.inf:
            raise ValueError(f"{type(loss).__name__}: {name} must be a positive finite number, got "
                             f"{getattr(loss, name)!r}")


def temperature_config(loss: Any) -> dict[str, float]:
    """``temperature``, plus the student / teacher temperatures where they differ from it (for configs)."""
    config = {"temperature": loss.temperature}
    for key in ("student_temperature", "teacher_temperature"):
        if getattr(loss, key) != loss.temperature:
            config[key] = getattr(loss, key)
    return config


def distillation_kl(student: Tensor, teacher: Tensor, student_temperature: float, teacher_temperature: float
                    ) -> Tensor:
    """``KL(softmax(teacher / T_t) || softmax(student / T_s)) * T_s**2``, the batch mean over the rows of the
    ``[batch, candidates]`` scores (Hinton et al. 2015: the factor keeps the gradient scale independent of the
    temperature). ``teacher`` gets no gradient."""
    student_log_probs = torch.log_softmax(student / student_temperature, dim=1)
    teacher_probs = torch.softmax(teacher.detach() / teacher_temperature, dim=1)
    return F.kl_div(student_log_probs, teacher_probs, reduction="batchmean") * student_temperature**2
