"""DistillKLDivLoss: match the student's score distribution over candidates to a teacher's (KL divergence)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from sentencekit.losses._base import EmbeddingLoss, check_columns, function_name, labels_on
from sentencekit.similarity import pairwise_dot_score


class DistillKLDivLoss(EmbeddingLoss):
    """(query, positive, negative_1, ...) columns; the label holds the teacher's scores of every
    (query, candidate) pair, shape ``[batch, num_candidates]``. Both score lists become distributions
    (softmax at ``temperature``); the loss is ``KL(teacher || student) * temperature**2``.
    ``student_temperature`` / ``teacher_temperature`` (default: ``temperature``) soften each side on its
    own (sentence-transformers 6.2's ``SparseDistillKLDivLoss`` arguments); the ``temperature**2`` factor
    (Hinton et al. 2015: keeps the gradient scale independent of the temperature) stays.

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
        self.temperature = temperature
        self.student_temperature = student_temperature
        self.teacher_temperature = teacher_temperature
        self.loss_fct = nn.KLDivLoss(reduction="batchmean")

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        check_columns(self, embeddings, (2, None))
        query = embeddings[0]
        student = torch.stack([self.similarity_fct(query, other) for other in embeddings[1:]], dim=1)
        teacher = labels_on(labels, student, self, student.dtype)
        if teacher.shape != student.shape:
            raise ValueError(f"DistillKLDivLoss needs one teacher score per candidate column: labels of shape "
                             f"{tuple(student.shape)}, got {tuple(teacher.shape)}.")
        student_t = self.student_temperature if self.student_temperature is not None else self.temperature
        teacher_t = self.teacher_temperature if self.teacher_temperature is not None else self.temperature
        student_log_probs = torch.log_softmax(student / student_t, dim=1)
        teacher_probs = torch.softmax(teacher / teacher_t, dim=1)
        return self.loss_fct(student_log_probs, teacher_probs) * self.temperature**2

    def get_config_dict(self) -> dict[str, Any]:
        config = {"similarity_fct": function_name(self.similarity_fct), "temperature": self.temperature}
        for key in ("student_temperature", "teacher_temperature"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        return config
