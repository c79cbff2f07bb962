"""MultipleNegativesRankingLoss for cross-encoders: pick the positive among sampled in-batch and hard negatives."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sentencekit.losses._citations import MNRL_CITATION
from sentencekit.losses.cross_encoder._cross_encoder_loss import CrossEncoderLoss, check_columns, fullname


class MultipleNegativesRankingLoss(CrossEncoderLoss):
    """(anchor, positive[, negative_1, ...]) columns, no labels. Each anchor is scored with its positive,
    with ``num_negatives`` candidates sampled from the other rows of the batch (their positives and
    negatives; all of them if ``num_negatives`` is None) and with its own hard negatives; the loss is the
    cross-entropy of ``scale * activation_fn(logits)`` with the positive as target.

    >>> from sentencekit import CrossEncoder
    >>> from sentencekit.losses.cross_encoder import MultipleNegativesRankingLoss
    >>> model = CrossEncoder("cross-encoder/ms-marco-MiniLM-L6-v2")                 # doctest: +SKIP
    >>> loss = MultipleNegativesRankingLoss(model, num_negatives=1)                 # doctest: +SKIP
    >>> inputs = [["How do I get a refund?", "Is it sunny?"], ["Refunds take 5 days.", "Paris is mild today."]]
    >>> loss(inputs, None).backward()                                               # doctest: +SKIP
    """

    citation = MNRL_CITATION

    def __init__(self, model: nn.Module, num_negatives: int | None = 4, scale: float = 10.0,
                 activation_fn: nn.Module | None = nn.Sigmoid()) -> None:  # noqa: B008
        super().__init__(model)
        self.num_negatives = num_negatives
        self.scale = scale
        self.activation_fn = activation_fn

    def in_batch_negatives(self, candidates: list[list[str]]) -> list[list[str]]:
        """``num_negatives`` columns of negatives: for row i, texts drawn (without replacement) from the other
        rows' candidates (all candidate columns), never from row i itself."""
        batch_size, num_columns = len(candidates[0]), len(candidates)
        flat = [text for column in candidates for text in column]  # index = column * batch_size + row
        allowed = ~torch.eye(batch_size, dtype=torch.bool).repeat(1, num_columns)  # [row, flat index]
        available = (batch_size - 1) * num_columns
        if available == 0:
            return []
        if self.num_negatives is None or self.num_negatives >= available:
            indices = torch.nonzero(allowed)[:, 1].view(batch_size, available)  # every other row's candidates
        else:
            indices = torch.multinomial(allowed.float(), self.num_negatives)  # [row, num_negatives]
        return [[flat[i] for i in column.tolist()] for column in indices.T]

    def forward(self, inputs: list[list[str]], labels: Tensor | None = None) -> Tensor:
        check_columns(self, inputs, (2, None))
        anchors = inputs[0]
        batch_size = len(anchors)
        # column 0: positives, then sampled in-batch negatives, then the given hard negatives
        columns = [inputs[1], *self.in_batch_negatives(inputs[1:]), *inputs[2:]]
        # one forward pass per column (pairs of similar lengths pad little)
        logits = torch.stack([self.score_pairs(list(zip(anchors, column))).view(-1) for column in columns], dim=1)
        if self.activation_fn is not None:
            logits = self.activation_fn(logits)
        if self.scale:
            logits = logits * self.scale
        return F.cross_entropy(logits, torch.zeros(batch_size, dtype=torch.long, device=logits.device))

    def get_config_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "num_negatives": self.num_negatives,
                "activation_fn": fullname(self.activation_fn) if self.activation_fn is not None else None}
