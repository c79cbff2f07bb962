"""MSELoss: regress a cross-encoder's score onto a gold or teacher score."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from sentencekit.losses._citations import DISTILLATION_CITATION
from sentencekit.losses.cross_encoder._cross_encoder_loss import CrossEncoderLoss, check_columns, fullname, labels_to


class MSELoss(CrossEncoderLoss):
    """(text1, text2) columns with a float score (e.g. a teacher's): ``MSE(activation_fn(logit), score)``.

    >>> import torch
    >>> from sentencekit import CrossEncoder
    >>> from sentencekit.losses.cross_encoder import MSELoss
    >>> model = CrossEncoder("cross-encoder/ms-marco-MiniLM-L6-v2")                 # doctest: +SKIP
    >>> loss = MSELoss(model)                                                       # doctest: +SKIP
    >>> inputs = [["How do I get a refund?", "How do I get a refund?"], ["Refunds take 5 days.", "It is sunny."]]
    >>> loss(inputs, torch.tensor([8.5, -6.0])).backward()                          # doctest: +SKIP
    """

    citation = DISTILLATION_CITATION

    def __init__(self, model: nn.Module, activation_fn: nn.Module = nn.Identity(), **kwargs: Any) -> None:  # noqa: B008
        super().__init__(model)
        self.activation_fn = activation_fn
        self.loss_fct = nn.MSELoss(**kwargs)

    def forward(self, inputs: list[list[str]], labels: Tensor | None) -> Tensor:
        check_columns(self, inputs, 2)
        logits = self.activation_fn(self.score_pairs(list(zip(inputs[0], inputs[1]))).view(-1))
        return self.loss_fct(logits, labels_to(labels, logits.device, self, logits.dtype).view(-1))

    def get_config_dict(self) -> dict[str, Any]:
        return {"activation_fn": fullname(self.activation_fn)}
