"""Post-processing and conversion of embeddings, shared by every model family and backend: Matryoshka
truncation, normalisation, quantized precisions and NumPy / tensor output.

torch is imported only by the functions that take or return tensors, so the ONNX backend (NumPy
arrays throughout, :func:`convert_array`) never loads it.

>>> import numpy as np
>>> convert_array(np.array([[3.0, 4.0]], dtype=np.float32), precision="float32").tolist()
[[3.0, 4.0]]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sentencekit.quantization import quantize_embeddings

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import Tensor


def truncate_and_normalize(embeddings: Tensor, truncate_dim: int | None, normalize: bool) -> Tensor:
    """Matryoshka slice first, then (optionally) L2-normalise the sliced vectors."""
    if truncate_dim is not None:
        embeddings = embeddings[..., :truncate_dim]
    if normalize:
        import torch.nn.functional as F

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
    import torch

    if t.dtype == torch.bfloat16:
        t = t.float()  # NumPy has no bfloat16
    return t.detach().cpu().numpy()


def _empty(precision: str, width: int) -> np.ndarray:
    dtype = {"float32": np.float32, "int8": np.int8, "binary": np.int8}.get(precision, np.uint8)
    if precision in ("binary", "ubinary"):
        width = (width + 7) // 8
    return np.empty((0, width), dtype=dtype)


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
    import torch

    if not rows:
        if convert_to_tensor:
            return torch.empty((0, empty_dim or 0), device=device)
        if convert_to_numpy:
            return _empty(precision, empty_dim or 0)
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


def convert_array(
    embeddings: np.ndarray,
    *,
    precision: str,
    convert_to_numpy: bool = True,
    convert_to_tensor: bool = False,
) -> Any:
    """The NumPy-backend version of :func:`convert_rows`: ``[n, dim]`` float32 in, the requested
    precision out; a tensor (importing torch) only when ``convert_to_tensor``, a list of rows when
    neither conversion is asked for."""
    if precision != "float32":
        out = quantize_embeddings(embeddings, precision) if len(embeddings) else _empty(precision,
                                                                                       embeddings.shape[1])
    else:
        out = np.ascontiguousarray(embeddings, dtype=np.float32)
    if convert_to_tensor:
        import torch

        return torch.from_numpy(out)
    return out if convert_to_numpy else list(out)
