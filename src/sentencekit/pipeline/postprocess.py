"""The last steps of the pipeline, for every model family and engine: Matryoshka truncation,
normalization, quantized precisions, activations, and conversion to what the caller asked for.

Arrays are NumPy arrays or torch tensors (whatever the engine produced); torch is imported only for
tensors, or when a NumPy result is asked for as a tensor, so the torch-free engines never load it.

>>> import numpy as np
>>> finish_embeddings(np.array([[3.0, 4.0]], dtype=np.float32), normalize=True).tolist()
[[0.6000000238418579, 0.800000011920929]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sentencekit.quantization import quantize_embeddings


def is_tensor(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch)."""
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def is_tensor_function(fn: Any) -> bool:
    """Whether ``fn`` is a torch module or function (it takes tensors, not NumPy arrays)."""
    return type(fn).__module__.startswith("torch") or getattr(fn, "__module__", "").startswith("torch")


def check_truncate_dim(truncate_dim: int | None, dim: int | None) -> None:
    if truncate_dim is None:
        return
    if not isinstance(truncate_dim, int) or isinstance(truncate_dim, bool) or truncate_dim <= 0:
        raise ValueError(f"truncate_dim must be a positive integer, got {truncate_dim!r}")
    if dim is not None and truncate_dim > dim:
        raise ValueError(f"truncate_dim={truncate_dim} is larger than the model's embedding dimension {dim}.")


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy array of a tensor (bf16/fp16 as float32) or array."""
    if is_tensor(x):
        if x.is_floating_point() and x.dtype.itemsize < 4:
            x = x.float()  # NumPy has no bfloat16
        return x.detach().cpu().numpy()
    return np.asarray(x)


def concat(parts: Sequence[Any]) -> Any:
    """Rows of all batches in one array (``np.concatenate`` / ``torch.cat``)."""
    if parts and is_tensor(parts[0]):
        import torch

        return torch.cat(list(parts))
    return np.concatenate(list(parts))


def take(array: Any, order: np.ndarray) -> Any:
    """``array[order]`` for arrays and tensors."""
    if is_tensor(array):
        import torch

        return array[torch.as_tensor(order, device=array.device)]
    return array[order]


def l2_normalize(x: Any, eps: float = 1e-12) -> Any:
    """Rows scaled to unit L2 norm (zero rows stay zero), as ``torch.nn.functional.normalize``."""
    if is_tensor(x):
        import torch.nn.functional as F

        return F.normalize(x, p=2, dim=-1)
    from sentencekit.engines.numpy_ops import l2_normalize as numpy_l2_normalize

    return numpy_l2_normalize(x, eps).astype(np.float32, copy=False)


def _empty(precision: str, width: int) -> np.ndarray:
    dtype = {"float32": np.float32, "int8": np.int8, "binary": np.int8}.get(precision, np.uint8)
    if precision in ("binary", "ubinary"):
        width = (width + 7) // 8
    return np.empty((0, width), dtype=dtype)


def finish_embeddings(
    embeddings: Any,
    *,
    truncate_dim: int | None = None,
    normalize: bool = False,
    precision: str = "float32",
    convert_to_numpy: bool = True,
    convert_to_tensor: bool = False,
) -> Any:
    """``[n, dim]`` float embeddings -> what ``encode`` returns: the first ``truncate_dim`` dimensions,
    then (``normalize``) unit length, then ``precision`` (int8/uint8 scaled over these rows, binary/ubinary
    packed sign bits); a NumPy array (``convert_to_numpy``), a tensor (``convert_to_tensor``, on the
    engine's device) or a list of rows."""
    if truncate_dim is not None:
        embeddings = embeddings[:, :truncate_dim]
    if normalize:
        embeddings = l2_normalize(embeddings)
    if precision != "float32":
        out = quantize_embeddings(embeddings, precision) if len(embeddings) else \
            _empty(precision, embeddings.shape[1])
    elif convert_to_tensor and is_tensor(embeddings):
        return embeddings
    else:
        out = np.ascontiguousarray(to_numpy(embeddings), dtype=np.float32) if (convert_to_numpy or convert_to_tensor) \
            else embeddings
    if convert_to_tensor:
        import torch

        return torch.from_numpy(out)
    if convert_to_numpy:
        return out
    return list(out)


def finish_scores(
    scores: Any,
    *,
    activation: Callable[[Any], Any] | None,
    num_labels: int,
    apply_softmax: bool = False,
    convert_to_numpy: bool = True,
    convert_to_tensor: bool = False,
) -> Any:
    """``[n, num_labels]`` logits -> what ``predict`` returns: the activation (Sigmoid for one label by
    default), ``[n]`` for one label, a softmax over labels when asked; float32."""
    if is_tensor(scores):
        import torch

        if scores.is_floating_point() and scores.dtype.itemsize < 4:
            scores = scores.float()  # score half-precision models in float32 (ties, softmax)
        if activation is not None:
            scores = activation(scores)
        if num_labels == 1:
            scores = scores.reshape(-1)
        elif apply_softmax:
            scores = torch.nn.functional.softmax(scores, dim=1)
        if convert_to_tensor:
            return scores.detach()
        if not convert_to_numpy:
            return list(scores.detach().cpu())
        scores = to_numpy(scores).astype(np.float32)
    else:
        from sentencekit.engines.numpy_ops import softmax

        if activation is not None and is_tensor_function(activation):  # e.g. torch.nn.Sigmoid() on ONNX logits
            import torch

            with torch.no_grad():
                scores = activation(torch.from_numpy(np.ascontiguousarray(scores))).numpy().astype(np.float32)
        elif activation is not None:
            scores = np.asarray(activation(scores), dtype=np.float32)
        if num_labels == 1:
            scores = scores.reshape(-1)
        elif apply_softmax:
            scores = softmax(scores, axis=1).astype(np.float32)
        if convert_to_tensor:
            import torch

            return torch.from_numpy(np.ascontiguousarray(scores))
    return scores if convert_to_numpy else list(scores)


__all__ = ["finish_embeddings", "finish_scores", "check_truncate_dim", "to_numpy", "concat", "take", "l2_normalize",
           "is_tensor"]
