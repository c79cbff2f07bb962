"""Similarity functions: cosine, dot, euclidean and manhattan (distances negated, so that higher always
means more similar), each as an all-pairs ``[n, m]`` form and a pairwise ``[n]`` form.

Inputs may be lists, NumPy arrays or torch tensors, 1-D (one vector) or 2-D; half precision is scored in
float32. Results are torch tensors, as in sentence-transformers.

>>> cos_sim([[1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]])
tensor([[1., 0.]])
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


class SimilarityFunction(str, Enum):
    COSINE = "cosine"
    DOT_PRODUCT = "dot"
    DOT = "dot"
    EUCLIDEAN = "euclidean"
    MANHATTAN = "manhattan"

    @staticmethod
    def possible_values() -> list[str]:
        return ["cosine", "dot", "euclidean", "manhattan"]


def to_tensor(x: Any) -> Tensor:
    """A list / NumPy array / tensor as a 2-D floating tensor (a 1-D input becomes one row)."""
    if isinstance(x, Tensor):
        t = x
    elif isinstance(x, np.ndarray):
        t = torch.from_numpy(x)
    elif isinstance(x, (list, tuple)) and x and isinstance(x[0], Tensor):
        t = torch.stack(list(x))
    else:
        t = torch.as_tensor(np.asarray(x, dtype=np.float32))  # Python lists score in float32
    if t.dim() == 1:
        t = t.unsqueeze(0)
    if t.dim() != 2:
        raise ValueError(f"Expected embeddings of shape [n, dim] (or [dim]), got shape {tuple(t.shape)}")
    if t.dtype in (torch.float16, torch.bfloat16) or not t.is_floating_point():
        t = t.float()
    return t


def _pair(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    a, b = to_tensor(a), to_tensor(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"Cannot compare embeddings of dimension {a.shape[1]} with embeddings of dimension {b.shape[1]}: "
            "were they made by different models (or truncated differently)?"
        )
    if a.dtype != b.dtype:
        a, b = a.double(), b.double()
    return a, b.to(a.device)


def cos_sim(a: Any, b: Any) -> Tensor:
    a, b = _pair(a, b)
    return F.normalize(a, p=2, dim=1) @ F.normalize(b, p=2, dim=1).T


def dot_score(a: Any, b: Any) -> Tensor:
    a, b = _pair(a, b)
    return a @ b.T


def euclidean_sim(a: Any, b: Any) -> Tensor:
    a, b = _pair(a, b)
    return -torch.cdist(a, b, p=2.0)


def manhattan_sim(a: Any, b: Any) -> Tensor:
    a, b = _pair(a, b)
    return -torch.cdist(a, b, p=1.0)


def _same_rows(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    a, b = _pair(a, b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"Pairwise similarity needs as many rows in a ({a.shape[0]}) as in b ({b.shape[0]}).")
    return a, b


def pairwise_cos_sim(a: Any, b: Any) -> Tensor:
    a, b = _same_rows(a, b)
    return (F.normalize(a, p=2, dim=1) * F.normalize(b, p=2, dim=1)).sum(dim=-1)


def pairwise_dot_score(a: Any, b: Any) -> Tensor:
    a, b = _same_rows(a, b)
    return (a * b).sum(dim=-1)


def pairwise_euclidean_sim(a: Any, b: Any) -> Tensor:
    a, b = _same_rows(a, b)
    return -torch.sqrt(((a - b) ** 2).sum(dim=-1))


def pairwise_manhattan_sim(a: Any, b: Any) -> Tensor:
    a, b = _same_rows(a, b)
    return -(a - b).abs().sum(dim=-1)


def pairwise_angle_sim(x: Any, y: Any) -> Tensor:
    """AnglE similarity (used by AnglELoss): vectors split into real and imaginary halves. Follows
    sentence-transformers' formula exactly, including its normalisation over the batch dimension."""
    x, y = _same_rows(x, y)
    a, b = torch.chunk(x, 2, dim=1)
    c, d = torch.chunk(y, 2, dim=1)
    z = torch.sum(c**2 + d**2, dim=0, keepdim=True)
    re = (a * c + b * d) / z
    im = (b * c - a * d) / z
    dz = torch.sum(a**2 + b**2, dim=0, keepdim=True) ** 0.5
    dw = torch.sum(c**2 + d**2, dim=0, keepdim=True) ** 0.5
    re = re / (dz / dw)
    im = im / (dz / dw)
    return torch.abs(torch.sum(torch.cat((re, im), dim=1), dim=1))


_ALL_PAIRS: dict[str, Callable[[Any, Any], Tensor]] = {
    "cosine": cos_sim, "dot": dot_score, "euclidean": euclidean_sim, "manhattan": manhattan_sim,
}
_PAIRWISE: dict[str, Callable[[Any, Any], Tensor]] = {
    "cosine": pairwise_cos_sim, "dot": pairwise_dot_score,
    "euclidean": pairwise_euclidean_sim, "manhattan": pairwise_manhattan_sim,
}


def check_similarity_fn_name(name: str | SimilarityFunction) -> str:
    value = name.value if isinstance(name, SimilarityFunction) else str(name)
    value = {"dot_product": "dot", "cos": "cosine", "cos_sim": "cosine"}.get(value, value)
    if value not in _ALL_PAIRS:
        raise ValueError(
            f"Unknown similarity function {name!r}; choose from {', '.join(SimilarityFunction.possible_values())}."
        )
    return value


def similarity_fn(name: str | SimilarityFunction) -> Callable[[Any, Any], Tensor]:
    return _ALL_PAIRS[check_similarity_fn_name(name)]


def pairwise_similarity_fn(name: str | SimilarityFunction) -> Callable[[Any, Any], Tensor]:
    return _PAIRWISE[check_similarity_fn_name(name)]
