"""MSELoss: distil a teacher's embeddings into the student (e.g. to make a model multilingual)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sentencekit.losses._base import EmbeddingLoss, check_columns, labels_on
from sentencekit.losses._citations import DISTILLATION_CITATION


class MSELoss(EmbeddingLoss):
    """One or more text columns; the label is the teacher embedding of the row (``[batch, dim]``, the target of
    every column) or one per column (``[batch, columns, dim]``, as sentence-transformers 6.2). Every column's
    student embedding is regressed onto its target (mean squared error, averaged over the columns). Teacher
    embeddings wider than the student's are cut to the student's dimension (as under ``MatryoshkaLoss``).
    Raises ``ValueError`` for missing labels or labels of another shape.

    >>> from sentencekit import SentenceTransformer
    >>> from sentencekit.losses import MSELoss
    >>> teacher = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")     # doctest: +SKIP
    >>> student = SentenceTransformer("sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2")  # doctest: +SKIP
    >>> loss = MSELoss(student)                                                     # doctest: +SKIP
    >>> english, german = ["Good morning"], ["Guten Morgen"]
    >>> target = teacher.encode(english, convert_to_tensor=True)                    # doctest: +SKIP
    >>> loss([student.tokenize(english), student.tokenize(german)], target).backward()  # doctest: +SKIP
    """

    citation = DISTILLATION_CITATION

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.loss_fct = nn.MSELoss()

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        check_columns(self, embeddings, (1, None))
        student = torch.cat(embeddings)  # all columns at once: the mean over columns of each column's MSE
        teacher = labels_on(labels, student, self, student.dtype).detach()
        if teacher.dim() == 3:  # [batch, columns, dim]: a teacher embedding per column
            if teacher.shape[1] != len(embeddings):
                raise ValueError(f"{type(self).__name__} got teacher embeddings for {teacher.shape[1]} columns "
                                 f"(labels {tuple(teacher.shape)}) and {len(embeddings)} text columns: give "
                                 f"[batch, {len(embeddings)}, dim], or [batch, dim] for one target for every column.")
            teacher = teacher.transpose(0, 1).reshape(-1, teacher.shape[-1])
        elif teacher.dim() == 2:
            teacher = teacher.repeat(len(embeddings), 1)
        else:
            raise ValueError(f"{type(self).__name__} needs teacher embeddings as labels, [batch, dim] or "
                             f"[batch, columns, dim]; got shape {tuple(teacher.shape)}.")
        return self.loss_fct(student, teacher[:, : student.shape[1]])
