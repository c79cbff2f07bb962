"""``CSRLoss`` and ``CSRReconstructionLoss``: train a ``SparseAutoEncoder`` on top of a dense embedder
(Contrastive Sparse Representation). Wen et al., "Beyond Matryoshka: Revisiting Sparse Coding for Adaptive
Representation" (ICML 2025, arXiv:2503.01776), with the top-k autoencoder losses of Gao et al. (2024,
arXiv:2406.04093); output keys as sentence-transformers 6.2."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sentencekit.losses._base import hold_model

CSR_CITATION = """
@misc{wen2025matryoshkarevisitingsparsecoding,
    title={Beyond Matryoshka: Revisiting Sparse Coding for Adaptive Representation},
    author={Tiansheng Wen and Yifei Wang and Zequn Zeng and Zhong Peng and Yudi Su and Xinyang Liu and Bo Chen
        and Hongwei Liu and Stefanie Jegelka and Chenyu You},
    year={2025},
    eprint={2503.01776},
    archivePrefix={arXiv},
    primaryClass={cs.LG},
    url={https://arxiv.org/abs/2503.01776},
}
"""

_NEEDED = ("sentence_embedding_backbone", "decoded_embedding_k", "decoded_embedding_4k", "decoded_embedding_aux",
           "decoded_embedding_k_pre_bias")


def normalized_mse(reconstruction: Tensor, target: Tensor) -> Tensor:
    """``MSE(reconstruction, target) / MSE(batch mean of target, target)`` for ``[n, d]`` inputs (0-d result):
    the error relative to that of predicting the batch's mean row (the normalised MSE of Gao et al. 2024's
    top-k autoencoders, as sentence-transformers 6.2 computes it). The denominator is 1 when the target's
    rows are all equal (no spread to normalise by)."""
    spread = F.mse_loss(target.mean(dim=0, keepdim=True).expand_as(target), target)
    constant = (spread == 0) | (target == target[:1]).all()
    return F.mse_loss(reconstruction, target) / torch.where(constant, torch.ones_like(spread), spread)


class CSRReconstructionLoss(nn.Module):
    """The reconstruction part of ``CSRLoss``, from the ``SparseAutoEncoder``'s training outputs of each
    column (``compute_loss_from_embeddings(outputs)``, ``outputs`` the model's feature dicts). Returns
    ``{"reconstruction_loss_k": MSE(x, dec_k), "reconstruction_loss_4k": MSE(x, dec_4k) / 8,
    "reconstruction_loss_aux": beta * NMSE(dec_aux, x - dec_k_pre_bias.detach())}``, each averaged over the
    columns (``x`` the backbone embedding; NMSE: :func:`normalized_mse`; the auxiliary term is 0 without
    ``k_aux``). ``forward`` raises ``NotImplementedError`` (use it through ``CSRLoss``), as in
    sentence-transformers 6.2; ``ValueError`` when the outputs lack the autoencoder's
    training keys (no ``SparseAutoEncoder``, or run under ``torch.inference_mode``)."""

    citation = CSR_CITATION

    def __init__(self, model: Any, beta: float = 1.0) -> None:
        super().__init__()
        hold_model(self, model)
        self.beta = beta

    def compute_loss_from_embeddings(self, outputs: Sequence[dict[str, Any]]) -> dict[str, Tensor]:
        total_k = total_4k = total_aux = None
        for features in outputs:
            missing = [key for key in _NEEDED if key not in features]
            if missing:
                raise ValueError(f"CSRReconstructionLoss needs a SparseAutoEncoder's training outputs; missing "
                                 f"{missing} (is the model's last module a SparseAutoEncoder, run outside "
                                 "torch.inference_mode?)")
            x = features["sentence_embedding_backbone"]
            loss_k = F.mse_loss(x, features["decoded_embedding_k"])
            loss_4k = F.mse_loss(x, features["decoded_embedding_4k"])
            decoded_aux = features["decoded_embedding_aux"]
            # the auxiliary code reconstructs what the top-k code missed (the residual), reviving dead latents
            loss_aux = (normalized_mse(decoded_aux, x - features["decoded_embedding_k_pre_bias"].detach())
                        if decoded_aux is not None else torch.zeros((), dtype=x.dtype, device=x.device))
            total_k = loss_k if total_k is None else total_k + loss_k
            total_4k = loss_4k if total_4k is None else total_4k + loss_4k
            total_aux = loss_aux if total_aux is None else total_aux + loss_aux
        if total_k is None or total_4k is None or total_aux is None:
            raise ValueError("CSRReconstructionLoss got no columns.")
        n = len(outputs)
        return {"reconstruction_loss_k": total_k / n, "reconstruction_loss_4k": total_4k / n / 8.0,
                "reconstruction_loss_aux": self.beta * total_aux / n}

    def forward(self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None = None) -> dict[str, Tensor]:
        raise NotImplementedError("CSRReconstructionLoss is the reconstruction part of CSRLoss: train with "
                                  "CSRLoss(model, loss=..., beta=..., gamma=...).")

    def get_config_dict(self) -> dict[str, Any]:
        return {"beta": self.beta}


class CSRLoss(nn.Module):
    """Reconstruction (:class:`CSRReconstructionLoss` with ``beta``) plus ``gamma`` times a ranking loss on
    the sparse codes (default ``SparseMultipleNegativesRankingLoss``; columns and labels are the inner
    loss's). ``forward`` returns ``{"reconstruction_loss_k", "reconstruction_loss_4k",
    "reconstruction_loss_aux", "base_loss"}`` (0-d tensors; the trainer trains on their sum; a dict inner
    result is merged in, each part times ``gamma``).

    >>> from sentencekit import SparseEncoder
    >>> from sentencekit.losses.sparse import CSRLoss
    >>> model = SparseEncoder("sentence-transformers/all-MiniLM-L6-v2")   # doctest: +SKIP
    >>> loss = CSRLoss(model, beta=0.1, gamma=1.0)                         # doctest: +SKIP
    """

    citation = CSR_CITATION

    def __init__(self, model: Any, loss: nn.Module | None = None, beta: float = 0.1, gamma: float = 1.0) -> None:
        super().__init__()
        hold_model(self, model)
        self.beta, self.gamma = beta, gamma
        self.reconstruction_loss = CSRReconstructionLoss(model, beta=beta)
        if loss is None:
            from sentencekit.losses.sparse.sparse_mnrl import SparseMultipleNegativesRankingLoss

            loss = SparseMultipleNegativesRankingLoss(model)
        self.loss = loss

    def forward(self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None = None) -> dict[str, Tensor]:
        outputs = [self.model(features) for features in sentence_features]
        losses = self.reconstruction_loss.compute_loss_from_embeddings(outputs)
        base = self.loss.compute_loss_from_embeddings([out["sentence_embedding"] for out in outputs], labels)
        if isinstance(base, dict):
            losses.update({key: self.gamma * value for key, value in base.items()})
        else:
            losses["base_loss"] = self.gamma * base
        return losses

    def get_config_dict(self) -> dict[str, Any]:
        return {"beta": self.beta, "gamma": self.gamma, "loss": type(self.loss).__name__}
