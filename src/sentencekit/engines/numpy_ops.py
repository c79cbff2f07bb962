"""The embedding pipeline's post-transformer steps in NumPy (pooling, Dense, Normalize, activations),
for transformer-only ONNX graphs (``onnx/model.onnx`` as sentence-transformers exports them). They follow
``sentencekit.modules`` exactly; the full-pipeline export runs the torch versions inside the graph.

>>> import numpy as np
>>> emb = np.ones((1, 3, 2), dtype=np.float32); mask = np.array([[1, 1, 0]])
>>> pool(emb, mask, ("mean",)).tolist()
[[1.0, 1.0]]
>>> l2_normalize(np.array([[3.0, 4.0]])).tolist()
[[0.6, 0.8]]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sentencekit.files import ModelFormatError


def pool(token_embeddings: np.ndarray, attention_mask: np.ndarray, modes: tuple[str, ...],
         prompt_length: int | None = None) -> np.ndarray:
    """Pool ``[n, seq, dim]`` token embeddings into ``[n, dim * len(modes)]`` float32: the NumPy twin of
    :func:`sentencekit.modules.pooling.pool_tokens` (see it for the rules: either padding side, values at padded
    positions never read, ``prompt_length`` drops each row's first real tokens)."""
    emb = token_embeddings.astype(np.float32, copy=False)
    real = attention_mask > 0
    keep = real & (np.cumsum(real, axis=1) > prompt_length) if prompt_length else real
    kept = np.where(keep[..., None], emb, np.float32(0.0))
    rows = np.arange(emb.shape[0])
    out = []
    for mode in modes:
        if mode == "cls":
            out.append(kept[rows, keep.argmax(axis=1)])
        elif mode == "max":
            pooled = np.where(keep[..., None], emb, -np.inf).max(axis=1)
            out.append(np.where(np.isneginf(pooled), 0.0, pooled).astype(np.float32))
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            counts = np.clip(keep.sum(axis=1, keepdims=True).astype(np.float32), 1e-9, None)
            out.append(kept.sum(axis=1) / (counts if mode == "mean" else np.sqrt(counts)))
        elif mode == "weightedmean":
            weights = (np.cumsum(real, axis=1) * keep).astype(np.float32)[..., None]  # 1 at the first real token
            out.append((kept * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None))
        elif mode == "lasttoken":
            positions = np.broadcast_to(np.arange(keep.shape[1]), keep.shape)
            out.append(kept[rows, (positions * keep).max(axis=1)])
        else:
            raise ValueError(f"Unknown pooling mode {mode!r}")
    return np.concatenate(out, axis=1).astype(np.float32, copy=False)


def splade_pool(logits: np.ndarray, attention_mask: np.ndarray, strategy: str, activation_function: str) -> np.ndarray:
    """``SpladePooling`` of MLM logits ``[n, seq, vocab]`` -> ``[n, vocab]`` float32 (padding counts as 0),
    for a transformer-only fill-mask graph; a sentencekit sparse export does this inside the graph."""
    x = logits.astype(np.float32, copy=False) * attention_mask[..., None].astype(np.float32)
    if strategy == "max":
        x = x.max(axis=1)  # relu and log1p are non-decreasing: pooling first gives the same numbers
    x = np.log1p(np.maximum(x, 0.0))
    if activation_function == "log1p_relu":
        x = np.log1p(x)
    return x if strategy == "max" else x.sum(axis=1)


def scoring_mask(input_ids: np.ndarray, attention_mask: np.ndarray, expansion_positions: np.ndarray | None,
                 task: str | None, *, skip_ids: list[int], skiplist_tasks: list[str],
                 keep_only_token_ids: list[int] | None) -> np.ndarray:
    """``MultiVectorMask``'s scoring mask ``[n, seq]`` bool (the torch module,
    :class:`sentencekit.modules.MultiVectorMask`, documents the rules): real tokens, plus the expansion positions
    of queries, minus skiplisted ids for the skiplist's tasks, within ``keep_only_token_ids`` for non-queries."""
    mask = attention_mask.astype(bool)
    if task == "query" and expansion_positions is not None:
        mask = mask | expansion_positions.astype(bool)
    if (task or "document") in skiplist_tasks and skip_ids:
        mask = mask & ~np.isin(input_ids, skip_ids)
    if task != "query" and keep_only_token_ids:
        mask = mask & np.isin(input_ids, keep_only_token_ids)
    return mask


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """``torch.nn.functional.normalize(x, p=2, dim=-1)``."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, eps)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _gelu(x: np.ndarray) -> np.ndarray:
    return (0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))).astype(x.dtype)


def _identity(x: np.ndarray) -> np.ndarray:
    return x


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def _softmax_last(x: np.ndarray) -> np.ndarray:
    return softmax(x, axis=-1)


# module-level functions, not lambdas: a model's activation must pickle (pool workers, Ray actors)
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Identity": _identity,
    "Tanh": np.tanh,
    "Sigmoid": _sigmoid,
    "ReLU": _relu,
    "GELU": _gelu,
    "Softmax": _softmax_last,
}


def activation(name: str | None) -> Callable[[np.ndarray], np.ndarray]:
    """A NumPy activation for a saved dotted class path (``torch.nn.modules.activation.Tanh``)."""
    short = (name or "Identity").rsplit(".", 1)[-1]
    if short not in ACTIVATIONS:
        raise ValueError(f"Activation {name!r} has no NumPy version; supported: {', '.join(ACTIVATIONS)}.")
    return ACTIVATIONS[short]


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


#: a Dense config without ``activation_function`` means Tanh (sentence-transformers' default, and the torch module's)
DEFAULT_DENSE_ACTIVATION = "torch.nn.modules.activation.Tanh"


class NumpyDense:
    """A saved ``Dense`` module applied in NumPy (weights from ``model.safetensors``)."""

    def __init__(self, folder: Path, activation_name: str | None) -> None:
        activation_name = activation_name or DEFAULT_DENSE_ACTIVATION
        path = Path(folder) / "model.safetensors"
        if not path.is_file():
            raise ModelFormatError(f"{path} not found: the ONNX backend reads Dense weights from safetensors.")
        from safetensors.numpy import load_file

        state = load_file(str(path))
        self.weight = state["linear.weight"].astype(np.float32)
        self.bias = state.get("linear.bias")
        if self.bias is not None:
            self.bias = self.bias.astype(np.float32)
        # the torch module's config, as its get_config_dict() reports it
        self.config = {"in_features": int(self.weight.shape[1]), "out_features": int(self.weight.shape[0]),
                       "bias": self.bias is not None, "activation_function": activation_name}
        self.act = activation(activation_name)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = x @ self.weight.T
        if self.bias is not None:
            y = y + self.bias
        return self.act(y).astype(np.float32, copy=False)
