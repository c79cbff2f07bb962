"""MultipleNegativesSymmetricRankingLoss: MNRL in both directions (anchor->positive and positive->anchor)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sentencekit.losses._base import check_columns
from sentencekit.losses.multiple_negatives_ranking import MultipleNegativesRankingLoss


class MultipleNegativesSymmetricRankingLoss(MultipleNegativesRankingLoss):
    """(anchor, positive[, negatives...]) columns, no labels. The mean of MNRL (each anchor picks its positive
    among all candidates) and the reverse direction (each positive picks its anchor among all anchors).

    >>> from sentencekit import SentenceTransformer
    >>> from sentencekit.losses import MultipleNegativesSymmetricRankingLoss
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")       # doctest: +SKIP
    >>> loss = MultipleNegativesSymmetricRankingLoss(model)                         # doctest: +SKIP
    >>> columns = [["How do I get a refund?", "Is it sunny?"], ["Refunds take 5 days.", "Paris is mild today."]]
    >>> loss([model.tokenize(texts) for texts in columns], None).backward()         # doctest: +SKIP
    """

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        check_columns(self, embeddings, (2, None))
        anchors, candidates = embeddings[0], torch.cat(embeddings[1:])
        batch_size = len(anchors)
        scores = self.similarity_fct(anchors, candidates) * self.scale
        targets = torch.arange(batch_size, device=scores.device)
        forward_loss = F.cross_entropy(scores, targets)
        # positive_i must pick anchor_i among all anchors: the anchor/positive block, transposed
        backward_loss = F.cross_entropy(scores[:, :batch_size].T, targets)
        return (forward_loss + backward_loss) / 2
