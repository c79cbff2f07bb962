"""MSELoss: distil a teacher's embeddings into the student (e.g. to make a model multilingual)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sentencekit.losses._base import EmbeddingLoss, check_columns, labels_on
from sentencekit.losses._citations import DISTILLATION_CITATION


class MSELoss(EmbeddingLoss):
    """One or more text columns; the label is the teacher embedding of the row. Every column's student
    embedding is regressed onto it (mean squared error). Teacher embeddings wider than the student's are cut
    to the student's dimension (as under ``MatryoshkaLoss``).

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
        student = torch.cat(embeddings)  # all columns against the same teacher embeddings
        teacher = labels_on(labels, student, self, student.dtype)[:, : student.shape[1]]
        return self.loss_fct(student, teacher.repeat(len(embeddings), 1))
