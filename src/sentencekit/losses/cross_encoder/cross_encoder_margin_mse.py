"""MarginMSELoss: match a cross-encoder's (positive - negative) score margin to a teacher's."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sentencekit.losses._citations import MARGIN_MSE_CITATION
from sentencekit.losses.cross_encoder._cross_encoder_loss import CrossEncoderLoss, check_columns, fullname, labels_to


class MarginMSELoss(CrossEncoderLoss):
    """(query, passage_one, passage_two) columns with the teacher margin ``T(q, p1) - T(q, p2)`` as label:
    ``MSE(activation_fn(s(q, p1)) - activation_fn(s(q, p2)), margin)``. More passage columns are accepted
    with labels ``[batch, n_passages - 1]`` (one margin per extra passage).

    >>> import torch
    >>> from sentencekit import CrossEncoder
    >>> from sentencekit.losses.cross_encoder import MarginMSELoss
    >>> model = CrossEncoder("cross-encoder/ms-marco-MiniLM-L6-v2")                 # doctest: +SKIP
    >>> loss = MarginMSELoss(model)                                                 # doctest: +SKIP
    >>> inputs = [["How do I get a refund?"], ["Refunds take 5 days."], ["It is sunny."]]
    >>> loss(inputs, torch.tensor([12.0])).backward()                               # doctest: +SKIP
    """

    citation = MARGIN_MSE_CITATION

    def __init__(self, model: nn.Module, activation_fn: nn.Module = nn.Identity(), **kwargs: Any) -> None:  # noqa: B008
        super().__init__(model)
        self.activation_fn = activation_fn
        self.loss_fct = nn.MSELoss(**kwargs)

    def forward(self, inputs: list[list[str]], labels: Tensor | None) -> Tensor:
        check_columns(self, inputs, (3, None))
        queries = inputs[0]
        # [n_passages, batch]: one forward pass per passage column
        scores = torch.stack([self.activation_fn(self.score_pairs(list(zip(queries, column))).view(-1))
                              for column in inputs[1:]])
        margins = (scores[0][None, :] - scores[1:]).T  # [batch, n_passages - 1]
        labels = labels_to(labels, margins.device, self, margins.dtype)
        if labels.dim() == 1:
            labels = labels[:, None]
        if labels.shape != margins.shape:
            raise ValueError(f"MarginMSELoss needs one teacher margin per extra passage column: labels of shape "
                             f"{tuple(margins.shape)} (or [batch] with 3 columns), got {tuple(labels.shape)}.")
        return self.loss_fct(margins, labels)

    def get_config_dict(self) -> dict[str, Any]:
        return {"activation_fn": fullname(self.activation_fn)}
