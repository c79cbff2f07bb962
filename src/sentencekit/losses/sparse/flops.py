"""The FLOPS regulariser of SPLADE: Paria et al., "Minimizing FLOPs to Learn Efficient Sparse
Representations" (ICLR 2020, arXiv:2004.05665), used by Formal et al., "SPLADE" (SIGIR 2021); the
active-dimension threshold (FLOPS with l0 masking) is from arXiv:2504.14839. Names as sentence-transformers
6.2 (``sentence_transformers.sparse_encoder.losses.FlopsLoss``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from sentencekit.losses._base import hold_model

FLOPS_CITATION = """
@article{paria2020minimizing,
    title={Minimizing flops to learn efficient sparse representations},
    author={Paria, Biswajit and Yeh, Chih-Kuan and Yen, Ian EH and Xu, Ning and Ravikumar, Pradeep
        and P{\\'o}czos, Barnab{\\'a}s},
    journal={arXiv preprint arXiv:2004.05665},
    year={2020}
}
"""


def flops(embeddings: Tensor, threshold: float | None = None) -> Tensor:
    """``sum_j (mean_i w_ij)**2`` of ``embeddings`` ``[n, dim]`` (non-negative SPLADE weights): a smooth
    stand-in for the expected number of multiplications of a dot product between two such vectors, which
    it pushes down by making every dimension rarely active. With ``threshold``, rows with at most that many
    non-zero entries are zeroed first (already sparse enough: not penalised). Returns a 0-d tensor of the
    embeddings' dtype.

    >>> flops(torch.tensor([[1.0, 0.0], [3.0, 2.0]]))    # means (2, 1): 4 + 1
    tensor(5.)
    """
    if threshold is not None:
        active = (embeddings != 0).sum(dim=1)
        embeddings = embeddings * (active > threshold).to(embeddings.dtype).unsqueeze(1)
    return torch.sum(torch.mean(embeddings, dim=0) ** 2)


class FlopsLoss(nn.Module):
    """The FLOPS regulariser as a module (``SpladeLoss``'s default regulariser):
    ``compute_loss_from_embeddings(embeddings [n, dim]) -> 0-d tensor`` is :func:`flops` with the module's
    ``threshold``. ``forward`` raises ``NotImplementedError`` (as sentence-transformers 6.2): a regulariser
    alone trains nothing useful.

    >>> loss = FlopsLoss(model=None, threshold=1)
    >>> loss.compute_loss_from_embeddings(torch.tensor([[1.0, 0.0], [3.0, 2.0]]))   # row 0 has 1 active dim
    tensor(3.2500)
    """

    citation = FLOPS_CITATION

    def __init__(self, model: Any, threshold: float | None = None) -> None:
        super().__init__()
        hold_model(self, model)
        self.threshold = threshold

    def compute_loss_from_embeddings(self, embeddings: Tensor) -> Tensor:
        return flops(embeddings, self.threshold)

    def forward(self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None = None) -> Tensor:
        raise NotImplementedError("FlopsLoss is a regulariser: use it inside SpladeLoss (document_regularizer= / "
                                  "query_regularizer=), which adds it to a ranking loss.")

    def get_config_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold}
