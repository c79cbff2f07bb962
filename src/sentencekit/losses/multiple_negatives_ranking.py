"""MultipleNegativesRankingLoss: InfoNCE with in-batch negatives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from sentencekit.losses._base import EmbeddingLoss, check_columns, function_name
from sentencekit.losses._citations import MNRL_CITATION
from sentencekit.similarity import cos_sim


def in_batch_ranking_loss(anchors: Tensor, candidates: Tensor, scale: float,
                          similarity_fct: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """Cross-entropy of ``scale * sim(anchor_i, candidates)`` with target ``i`` (row i's positive)."""
    scores = similarity_fct(anchors, candidates) * scale
    targets = torch.arange(len(anchors), device=scores.device)
    return nn.functional.cross_entropy(scores, targets)


class MultipleNegativesRankingLoss(EmbeddingLoss):
    """(anchor, positive[, negative_1, ...]) columns, no labels. For anchor ``i`` the positive ``i`` must score
    highest among all positives and negatives of the batch (InfoNCE, in-batch negatives). ``scale`` is
    1 / temperature; with ``similarity_fct=dot_score`` use a smaller scale.

    >>> from sentencekit import SentenceTransformer
    >>> from sentencekit.losses import MultipleNegativesRankingLoss
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")       # doctest: +SKIP
    >>> loss = MultipleNegativesRankingLoss(model)                                  # doctest: +SKIP
    >>> columns = [["How do I get a refund?", "Is it sunny?"], ["Refunds take 5 days.", "Paris is mild today."]]
    >>> loss([model.tokenize(texts) for texts in columns], None).backward()         # doctest: +SKIP
    """

    citation = MNRL_CITATION

    def __init__(self, model: nn.Module, scale: float = 20.0,
                 similarity_fct: Callable[[Tensor, Tensor], Tensor] = cos_sim) -> None:
        super().__init__(model)
        self.scale = scale
        self.similarity_fct = similarity_fct
        self.cross_entropy_loss = nn.CrossEntropyLoss()

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        check_columns(self, embeddings, (2, None))
        return in_batch_ranking_loss(embeddings[0], torch.cat(embeddings[1:]), self.scale, self.similarity_fct)

    def get_config_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "similarity_fct": function_name(self.similarity_fct)}
