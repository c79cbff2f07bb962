"""BinaryCrossEntropyLoss: (query, document) pairs with a 0/1 (or 0..1) relevance label."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from sentencekit.losses.cross_encoder._cross_encoder_loss import CrossEncoderLoss, check_columns, fullname, labels_to


class BinaryCrossEntropyLoss(CrossEncoderLoss):
    """(text1, text2) columns with a 0/1 or 0..1 label: ``BCEWithLogitsLoss(activation_fn(logits), label)``.
    The activation defaults to Identity: the loss reads raw logits. ``pos_weight`` (a tensor) up-weights
    positives when they are rare.

    >>> import torch
    >>> from sentencekit import CrossEncoder
    >>> from sentencekit.losses.cross_encoder import BinaryCrossEntropyLoss
    >>> model = CrossEncoder("cross-encoder/ms-marco-MiniLM-L6-v2")                 # doctest: +SKIP
    >>> loss = BinaryCrossEntropyLoss(model)                                        # doctest: +SKIP
    >>> inputs = [["How do I get a refund?", "How do I get a refund?"], ["Refunds take 5 days.", "It is sunny."]]
    >>> loss(inputs, torch.tensor([1, 0])).backward()                               # doctest: +SKIP
    """

    def __init__(self, model: nn.Module, activation_fn: nn.Module = nn.Identity(),  # noqa: B008
                 pos_weight: Tensor | None = None, **kwargs: Any) -> None:
        super().__init__(model)
        self.activation_fn = activation_fn
        self.pos_weight = pos_weight
        self.bce_with_logits_loss = nn.BCEWithLogitsLoss(pos_weight=pos_weight, **kwargs)

    def forward(self, inputs: list[list[str]], labels: Tensor | None) -> Tensor:
        check_columns(self, inputs, 2)
        logits = self.activation_fn(self.score_pairs(list(zip(inputs[0], inputs[1]))).view(-1))
        return self.bce_with_logits_loss(logits, labels_to(labels, logits.device, self, logits.dtype))

    def get_config_dict(self) -> dict[str, Any]:
        pos_weight = self.pos_weight
        if isinstance(pos_weight, Tensor):
            pos_weight = pos_weight.tolist()
        return {"activation_fn": fullname(self.activation_fn), "pos_weight": pos_weight}
