"""Shared pieces of the cross-encoder losses: scoring text pairs with the model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from sentencekit.losses._base import check_columns, fullname, hold_model

__all__ = ["CrossEncoderLoss", "check_columns", "fullname", "labels_to"]


class CrossEncoderLoss(nn.Module):
    """Base class: holds the model and scores (a, b) pairs with it. ``forward(inputs, labels)`` gets the raw
    text columns of the batch."""

    citation: str | None = None

    def __init__(self, model: nn.Module, *, single_label: bool = True) -> None:
        super().__init__()
        hold_model(self, model)
        if single_label and getattr(model, "num_labels", 1) != 1:
            raise ValueError(f"{type(self).__name__} expects a model with 1 output label, "
                             f"got a model with {model.num_labels} output labels.")

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> Tensor:
        """Raw logits ``[len(pairs), num_labels]`` (with gradients) of (a, b) pairs."""
        features = self.model.tokenize([(a, b) for a, b in pairs])
        features.pop("truncated", None)
        device = self.model.device
        features = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in features.items()}
        return self.model(features)["scores"]

    def get_config_dict(self) -> dict[str, Any]:
        return {}


def labels_to(labels: Any, device: torch.device, loss: nn.Module, dtype: torch.dtype | None = None) -> Tensor:
    if labels is None:
        raise ValueError(f"{type(loss).__name__} needs labels (a 'label' or 'score' column).")
    labels = labels if isinstance(labels, Tensor) else torch.as_tensor(labels)
    return labels.to(device=device, dtype=dtype if dtype is not None else labels.dtype)
