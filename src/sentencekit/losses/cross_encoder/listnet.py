"""ListNetLoss: listwise learning to rank (cross-entropy between score and label distributions)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sentencekit.losses.cross_encoder._cross_encoder_loss import fullname
from sentencekit.losses.cross_encoder._listwise import ListwiseLoss


class ListNetLoss(ListwiseLoss):
    """(query, [doc_1, ..., doc_n]) inputs with labels [score_1, ..., score_n] (lists may differ in length
    between queries). Loss: cross-entropy between ``softmax(labels)`` and ``softmax(activation_fn(scores))``
    over each query's documents. ``mini_batch_size`` pairs are scored per forward pass (None: the number of
    queries; <= 0: all at once).

    >>> import torch
    >>> from sentencekit import CrossEncoder
    >>> from sentencekit.losses.cross_encoder import ListNetLoss
    >>> model = CrossEncoder("cross-encoder/ms-marco-MiniLM-L6-v2")                 # doctest: +SKIP
    >>> loss = ListNetLoss(model)                                                   # doctest: +SKIP
    >>> inputs = [["How do I get a refund?"], [["Refunds take 5 days.", "It is sunny.", "Refund policy"]]]
    >>> loss(inputs, [torch.tensor([1.0, 0.0, 1.0])]).backward()                    # doctest: +SKIP
    """

    citation = """
@inproceedings{cao2007learning,
    title={Learning to Rank: From Pairwise Approach to Listwise Approach},
    author={Cao, Zhe and Qin, Tao and Liu, Tie-Yan and Tsai, Ming-Feng and Li, Hang},
    booktitle={Proceedings of the 24th international conference on Machine learning},
    pages={129--136},
    year={2007}
}
"""

    def __init__(self, model: nn.Module, activation_fn: nn.Module | None = nn.Identity(),  # noqa: B008
                 mini_batch_size: int | None = None) -> None:
        super().__init__(model)
        self.activation_fn = activation_fn or nn.Identity()
        self.mini_batch_size = mini_batch_size

    def forward(self, inputs: list[Any], labels: Any) -> Tensor:
        matrices = self._score_matrix(inputs, labels)
        if matrices is None:  # no documents at all
            return torch.zeros((), device=self.model.device, requires_grad=True)
        scores, label_matrix = matrices
        return F.cross_entropy(scores, label_matrix.softmax(dim=1))

    def get_config_dict(self) -> dict[str, Any]:
        return {"activation_fn": fullname(self.activation_fn), "mini_batch_size": self.mini_batch_size}
