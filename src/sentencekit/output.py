"""Post-processing and conversion of embeddings, shared by every model family: Matryoshka truncation,
normalisation, quantized precisions and NumPy / tensor output."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sentencekit.quantization import quantize_embeddings


def truncate_and_normalize(embeddings: Tensor, truncate_dim: int | None, normalize: bool) -> Tensor:
    """Matryoshka slice first, then (optionally) L2-normalise the sliced vectors."""
    if truncate_dim is not None:
        embeddings = embeddings[..., :truncate_dim]
    if normalize:
        embeddings = F.normalize(embeddings, p=2, dim=-1)
    return embeddings


def check_truncate_dim(truncate_dim: int | None, dim: int | None) -> None:
    if truncate_dim is None:
        return
    if not isinstance(truncate_dim, int) or truncate_dim <= 0:
        raise ValueError(f"truncate_dim must be a positive integer, got {truncate_dim!r}")
    if dim is not None and truncate_dim > dim:
        raise ValueError(f"truncate_dim={truncate_dim} is larger than the model's embedding dimension {dim}.")


def to_numpy(t: Tensor) -> np.ndarray:
    if t.dtype == torch.bfloat16:
        t = t.float()  # NumPy has no bfloat16
    return t.detach().cpu().numpy()


def convert_rows(
    rows: list[Tensor],
    *,
    precision: str,
    convert_to_numpy: bool,
    convert_to_tensor: bool,
    empty_dim: int | None,
    device: torch.device | str,
) -> Any:
    """Stack per-input embedding rows into the requested output type."""
    if not rows:
        if convert_to_tensor:
            return torch.empty((0, empty_dim or 0), device=device)
        if convert_to_numpy:
            dtype = {"float32": np.float32, "int8": np.int8, "binary": np.int8}.get(precision, np.uint8)
            width = empty_dim or 0
            if precision in ("binary", "ubinary"):
                width = (width + 7) // 8
            return np.empty((0, width), dtype=dtype)
        return []
    if precision != "float32":
        quantized = quantize_embeddings(torch.stack(rows), precision)
        if convert_to_tensor:
            return torch.from_numpy(quantized)
        return quantized if convert_to_numpy else list(torch.from_numpy(quantized))
    if convert_to_tensor:
        return torch.stack(rows)
    if convert_to_numpy:
        return to_numpy(torch.stack(rows))
    return rows
