from __future__ import annotations

import os

import torch.nn.functional as F
from torch import Tensor

from sentencekit.modules.base import Module


class Normalize(Module):
    """L2-normalises ``sentence_embedding`` so that cosine similarity equals the dot product.

    >>> import torch
    >>> Normalize()({"sentence_embedding": torch.tensor([[3.0, 4.0]])})["sentence_embedding"]
    tensor([[0.6000, 0.8000]])
    """

    st_type = "sentence_transformers.models.Normalize"

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        return {**features, "sentence_embedding": F.normalize(features["sentence_embedding"], p=2, dim=1)}

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs) -> Normalize:
        # Normalize has no files; its folder may even be absent (all-MiniLM-L6-v2 on the Hub).
        return cls()
