"""CrossEntropyLoss: (text1, text2) pairs with a class label, for multi-label cross-encoders."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from sentencekit.losses.cross_encoder._cross_encoder_loss import CrossEncoderLoss, check_columns, fullname, labels_to


class CrossEntropyLoss(CrossEncoderLoss):
    """(text1, text2) columns with an integer class label, for a model with ``num_labels`` > 1 (e.g. NLI):
    ``CrossEntropyLoss(activation_fn(logits), label)``.

    >>> import torch
    >>> from sentencekit import CrossEncoder
    >>> from sentencekit.losses.cross_encoder import CrossEntropyLoss
    >>> model = CrossEncoder("cross-encoder/nli-deberta-v3-xsmall")                 # doctest: +SKIP
    >>> loss = CrossEntropyLoss(model)                                              # doctest: +SKIP
    >>> inputs = [["A man is eating.", "A man is eating."], ["Someone eats.", "Nobody eats."]]
    >>> loss(inputs, torch.tensor([1, 0])).backward()                               # doctest: +SKIP
    """

    def __init__(self, model: nn.Module, activation_fn: nn.Module = nn.Identity(), **kwargs: Any) -> None:  # noqa: B008
        super().__init__(model, single_label=False)
        self.activation_fn = activation_fn
        self.cross_entropy_loss = nn.CrossEntropyLoss(**kwargs)

    def forward(self, inputs: list[list[str]], labels: Tensor | None) -> Tensor:
        check_columns(self, inputs, 2)
        logits = self.activation_fn(self.score_pairs(list(zip(inputs[0], inputs[1]))))
        return self.cross_entropy_loss(logits, labels_to(labels, logits.device, self).long().view(-1))

    def get_config_dict(self) -> dict[str, Any]:
        return {"activation_fn": fullname(self.activation_fn)}
