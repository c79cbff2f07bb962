"""MarginMSELoss: match the student's (positive - negative) score margin to a teacher's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from sentencekit.losses._base import EmbeddingLoss, check_columns, function_name, labels_on
from sentencekit.losses._citations import MARGIN_MSE_CITATION
from sentencekit.similarity import pairwise_dot_score


class MarginMSELoss(EmbeddingLoss):
    """(query, positive, negative) columns with the teacher margin ``T(q, p) - T(q, n)`` as label; also
    (query, positive, negative_1, ..., negative_n) with labels ``[batch, n]`` (one margin per negative), or the
    teacher's scores ``[batch, 1 + n]`` (positive first; their margins are taken), as sentence-transformers 6.2.
    Loss: MSE between ``sim(q, p) - sim(q, n)`` and the teacher margin (Hofstätter et al. 2021,
    arXiv:2010.02666). Raises ``ValueError`` for labels of another shape.

    >>> import torch
    >>> from sentencekit import SentenceTransformer
    >>> from sentencekit.losses import MarginMSELoss
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")       # doctest: +SKIP
    >>> loss = MarginMSELoss(model)                                                 # doctest: +SKIP
    >>> columns = [["How do I get a refund?"], ["Refunds take 5 days."], ["Paris is mild today."]]
    >>> loss([model.tokenize(texts) for texts in columns], torch.tensor([0.7])).backward()  # doctest: +SKIP
    """

    citation = MARGIN_MSE_CITATION

    def __init__(self, model: nn.Module,
                 similarity_fct: Callable[[Tensor, Tensor], Tensor] = pairwise_dot_score) -> None:
        super().__init__(model)
        self.similarity_fct = similarity_fct
        self.loss_fct = nn.MSELoss()

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        check_columns(self, embeddings, (3, None))
        query, positive, negatives = embeddings[0], embeddings[1], embeddings[2:]
        positive_scores = self.similarity_fct(query, positive)
        margins = torch.stack([positive_scores - self.similarity_fct(query, n) for n in negatives], dim=1)
        labels = labels_on(labels, margins, self, margins.dtype).detach()
        return self.loss_fct(margins, teacher_margins(labels, *margins.shape, type(self).__name__))

    def get_config_dict(self) -> dict[str, Any]:
        return {"similarity_fct": function_name(self.similarity_fct)}


def teacher_margins(labels: Tensor, batch: int, negatives: int, loss_name: str) -> Tensor:
    """The teacher margins ``[batch, negatives]`` from ``labels``: margins ``T(q, p) - T(q, n_j)`` (``[batch,
    negatives]``, or ``[batch]`` for one negative) or the teacher scores ``T(q, p), T(q, n_1), ...`` (``[batch,
    1 + negatives]``, turned into margins). Raises ``ValueError`` naming ``loss_name`` for another shape."""
    if labels.shape == (batch, negatives + 1):
        return labels[:, :1] - labels[:, 1:]
    if labels.shape == (batch,) and negatives == 1:
        return labels[:, None]
    if labels.shape != (batch, negatives):
        raise ValueError(f"{loss_name} got labels of shape {tuple(labels.shape)} for a batch of {batch} with "
                         f"{negatives} negative column(s): give the teacher margins T(q, p) - T(q, n) ([{batch}] for "
                         f"one negative, or [{batch}, {negatives}]) or the teacher scores T(q, p), T(q, n_1), ... "
                         f"([{batch}, {negatives + 1}]).")
    return labels
