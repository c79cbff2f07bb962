"""What the triplet losses share: the citation, distance matrices, label masks and the batch-triplet
constructor (a distance function over the batch, a margin)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from sentencekit.losses._base import EmbeddingLoss, check_columns, function_name, labels_on
from sentencekit.similarity import cos_sim

TRIPLET_CITATION = """
@misc{hermans2017defense,
    title={In Defense of the Triplet Loss for Person Re-Identification},
    author={Alexander Hermans and Lucas Beyer and Bastian Leibe},
    year={2017},
    eprint={1703.07737},
    archivePrefix={arXiv},
    primaryClass={cs.CV}
}
"""


class BatchHardTripletLossDistanceFunction:
    """All-pairs distance matrices ``[batch, batch]`` for the batch triplet losses."""

    @staticmethod
    def cosine_distance(embeddings: Tensor) -> Tensor:
        return 1 - cos_sim(embeddings, embeddings)

    @staticmethod
    def eucledian_distance(embeddings: Tensor, squared: bool = False) -> Tensor:
        """Euclidean distances (spelling as in sentence-transformers); the diagonal is exactly 0 with a
        finite gradient."""
        dot = embeddings @ embeddings.T
        square_norm = torch.diag(dot)
        distances = (square_norm[None, :] - 2.0 * dot + square_norm[:, None]).clamp(min=0)
        if not squared:
            zero = distances.eq(0).to(distances.dtype)
            distances = (1.0 - zero) * torch.sqrt(distances + zero * 1e-16)  # no inf gradient at 0
        return distances

    euclidean_distance = eucledian_distance


def anchor_positive_mask(labels: Tensor) -> Tensor:
    """``[i, j]``: ``i != j`` and same label."""
    same = labels[None, :] == labels[:, None]
    return same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)


def anchor_negative_mask(labels: Tensor) -> Tensor:
    """``[i, k]``: different labels."""
    return labels[None, :] != labels[:, None]


def triplet_mask(labels: Tensor) -> Tensor:
    """``[i, j, k]``: i, j, k distinct, ``label_i == label_j`` and ``label_i != label_k``."""
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    distinct = ~eye[:, :, None] & ~eye[:, None, :] & ~eye[None, :, :]
    same = labels[None, :] == labels[:, None]
    return distinct & same[:, :, None] & ~same[:, None, :]


class BatchTripletLoss(EmbeddingLoss):
    """Base of the losses over one labelled text column that form their triplets inside the batch:
    subclasses turn the distance matrix and the labels into a loss (:meth:`triplet_loss`)."""

    citation = TRIPLET_CITATION

    def __init__(self, model: nn.Module,
                 distance_metric: Callable[[Tensor], Tensor] = BatchHardTripletLossDistanceFunction.eucledian_distance,
                 margin: float = 5) -> None:
        super().__init__(model)
        self.distance_metric = distance_metric
        self.triplet_margin = margin

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        check_columns(self, embeddings, 1)
        distances = self.distance_metric(embeddings[0])
        return self.triplet_loss(distances, labels_on(labels, distances, self).view(-1))

    def triplet_loss(self, distances: Tensor, labels: Tensor) -> Tensor:
        raise NotImplementedError

    def get_config_dict(self) -> dict[str, Any]:
        return {"distance_metric": function_name(self.distance_metric), "margin": self.triplet_margin}
