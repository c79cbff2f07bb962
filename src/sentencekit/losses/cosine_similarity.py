"""CosineSimilarityLoss: regress the cosine similarity of a pair onto a gold score."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sentencekit.losses._base import EmbeddingLoss, check_columns, fullname, labels_on


class CosineSimilarityLoss(EmbeddingLoss):
    """(text1, text2) columns with a float score (e.g. 0..1): ``loss_fct(cos_score_transformation(cos(u, v)), score)``,
    by default the mean squared error.

    >>> import torch
    >>> from sentencekit import SentenceTransformer
    >>> from sentencekit.losses import CosineSimilarityLoss
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")       # doctest: +SKIP
    >>> loss = CosineSimilarityLoss(model)                                          # doctest: +SKIP
    >>> columns = [["How do I get a refund?", "Is it sunny?"], ["Refunds take 5 days.", "Refunds take 5 days."]]
    >>> loss([model.tokenize(texts) for texts in columns], torch.tensor([0.9, 0.1])).backward()  # doctest: +SKIP
    """

    def __init__(self, model: nn.Module, loss_fct: nn.Module = nn.MSELoss(),  # noqa: B008 (as in sentence-transformers)
                 cos_score_transformation: nn.Module = nn.Identity()) -> None:  # noqa: B008
        super().__init__(model)
        self.loss_fct = loss_fct
        self.cos_score_transformation = cos_score_transformation

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        check_columns(self, embeddings, 2)
        scores = self.cos_score_transformation(torch.cosine_similarity(embeddings[0], embeddings[1]))
        return self.loss_fct(scores, labels_on(labels, scores, self, scores.dtype).view(-1))

    def get_config_dict(self) -> dict[str, Any]:
        return {"loss_fct": fullname(self.loss_fct),
                "cos_score_transformation": fullname(self.cos_score_transformation)}
