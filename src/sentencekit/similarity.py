"""Similarity functions: cosine, dot, euclidean and manhattan (distances negated, so that higher always
means more similar), each as an all-pairs ``[n, m]`` form and a pairwise ``[n]`` form.

Inputs may be lists, NumPy arrays or torch tensors, 1-D (one vector) or 2-D; half precision is scored in
float32. Sparse torch tensors (``SparseEncoder`` embeddings) are scored sparse by
:mod:`sentencekit.sparse_tensors` (results dense). Results are torch tensors, as in sentence-transformers.
One vector against one vector follows sentence-transformers: the all-pairs forms (``cos_sim`` ...) treat
a 1-D input as one row and return ``[1, 1]``; the pairwise forms return one 0-d score (``[]``) when both
inputs are 1-D. The ``np_*`` versions take and return NumPy arrays and never import torch (the ONNX
backend uses them).

>>> cos_sim([[1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]])
tensor([[1., 0.]])
>>> np_similarity_fn("cosine")([[1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]).tolist()
[[1.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
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
    import torch
    from torch import Tensor

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


def is_vector(x: Any) -> bool:
    """True for one embedding ``[dim]``: a 1-D array / tensor, or a flat list of numbers."""
    if hasattr(x, "ndim"):
        return x.ndim == 1
    if isinstance(x, (list, tuple)):
        return not x or not (isinstance(x[0], (list, tuple)) or getattr(x[0], "ndim", 0) > 0)
    return False


def _has_sparse(x: Any) -> bool:
    """Whether ``x`` is (or is a list of) sparse torch tensors, answered without importing torch."""
    if isinstance(x, (list, tuple)) and x:
        x = x[0]
    return type(x).__module__.startswith("torch") and str(getattr(x, "layout", "torch.strided")) != "torch.strided"


def _sparse_aware(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``fn`` for dense inputs; its namesake in :mod:`sentencekit.sparse_tensors` when an input is a sparse
    tensor (sparse embeddings, e.g. ``SparseEncoder.encode``; a dense other side is made sparse)."""
    import functools

    @functools.wraps(fn)
    def wrapper(a: Any, b: Any) -> Any:
        if _has_sparse(a) or _has_sparse(b):
            from sentencekit import sparse_tensors

            return getattr(sparse_tensors, fn.__name__)(a, b)
        return fn(a, b)

    return wrapper


def _one_score_for_vectors(pairwise: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """A pairwise function ``[n]`` that returns a 0-d score when both inputs are single vectors ``[dim]``
    (sentence-transformers' ``(a * b).sum(dim=-1)`` on 1-D inputs), instead of a ``[1]`` array."""
    import functools

    @functools.wraps(pairwise)
    def wrapper(a: Any, b: Any) -> Any:
        scores = pairwise(a, b)
        return scores[0] if is_vector(a) and is_vector(b) else scores

    return wrapper


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


@_sparse_aware
def cos_sim(a: Any, b: Any) -> Tensor:
    """All-pairs cosine similarity: ``a`` ``[n, dim]``, ``b`` ``[m, dim]`` -> float tensor ``[n, m]``.
    A 1-D input is one row, so two vectors give ``[1, 1]`` (as sentence-transformers does). Raises
    ``ValueError`` when the dimensions differ or an input is not 1-D / 2-D."""
    import torch.nn.functional as F

    a, b = _pair(a, b)
    return F.normalize(a, p=2, dim=1) @ F.normalize(b, p=2, dim=1).T


@_sparse_aware
def dot_score(a: Any, b: Any) -> Tensor:
    """All-pairs dot product: ``a`` ``[n, dim]``, ``b`` ``[m, dim]`` -> float tensor ``[n, m]``.
    A 1-D input is one row, so two vectors give ``[1, 1]`` (as sentence-transformers does). Raises
    ``ValueError`` when the dimensions differ or an input is not 1-D / 2-D."""
    a, b = _pair(a, b)
    return a @ b.T


@_sparse_aware
def euclidean_sim(a: Any, b: Any) -> Tensor:
    """All-pairs negated euclidean distance: ``a`` ``[n, dim]``, ``b`` ``[m, dim]`` -> float tensor ``[n, m]``.
    A 1-D input is one row, so two vectors give ``[1, 1]`` (as sentence-transformers does). Raises
    ``ValueError`` when the dimensions differ or an input is not 1-D / 2-D."""
    import torch

    a, b = _pair(a, b)
    return -torch.cdist(a, b, p=2.0)


@_sparse_aware
def manhattan_sim(a: Any, b: Any) -> Tensor:
    """All-pairs negated manhattan distance: ``a`` ``[n, dim]``, ``b`` ``[m, dim]`` -> float tensor ``[n, m]``.
    A 1-D input is one row, so two vectors give ``[1, 1]`` (as sentence-transformers does). Raises
    ``ValueError`` when the dimensions differ or an input is not 1-D / 2-D."""
    import torch

    a, b = _pair(a, b)
    return -torch.cdist(a, b, p=1.0)


def _same_rows(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    a, b = _pair(a, b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"Pairwise similarity needs as many rows in a ({a.shape[0]}) as in b ({b.shape[0]}).")
    return a, b


@_one_score_for_vectors
@_sparse_aware
def pairwise_cos_sim(a: Any, b: Any) -> Tensor:
    """Row-by-row cosine similarity: ``a`` and ``b`` ``[n, dim]`` -> float tensor ``[n]``; two 1-D vectors
    ``[dim]`` -> a 0-d tensor. Raises ``ValueError`` when the dimensions or row counts differ."""
    import torch.nn.functional as F

    a, b = _same_rows(a, b)
    return (F.normalize(a, p=2, dim=1) * F.normalize(b, p=2, dim=1)).sum(dim=-1)


@_one_score_for_vectors
@_sparse_aware
def pairwise_dot_score(a: Any, b: Any) -> Tensor:
    """Row-by-row dot product: ``a`` and ``b`` ``[n, dim]`` -> float tensor ``[n]``; two 1-D vectors
    ``[dim]`` -> a 0-d tensor. Raises ``ValueError`` when the dimensions or row counts differ."""
    a, b = _same_rows(a, b)
    return (a * b).sum(dim=-1)


@_one_score_for_vectors
@_sparse_aware
def pairwise_euclidean_sim(a: Any, b: Any) -> Tensor:
    """Row-by-row negated euclidean distance: ``a`` and ``b`` ``[n, dim]`` -> float tensor ``[n]``; two 1-D vectors
    ``[dim]`` -> a 0-d tensor. Raises ``ValueError`` when the dimensions or row counts differ."""
    import torch

    a, b = _same_rows(a, b)
    return -torch.sqrt(((a - b) ** 2).sum(dim=-1))


@_one_score_for_vectors
@_sparse_aware
def pairwise_manhattan_sim(a: Any, b: Any) -> Tensor:
    """Row-by-row negated manhattan distance: ``a`` and ``b`` ``[n, dim]`` -> float tensor ``[n]``; two 1-D vectors
    ``[dim]`` -> a 0-d tensor. Raises ``ValueError`` when the dimensions or row counts differ."""
    a, b = _same_rows(a, b)
    return -(a - b).abs().sum(dim=-1)


@_one_score_for_vectors
def pairwise_angle_sim(x: Any, y: Any) -> Tensor:
    """AnglE similarity (Li & Li 2023, arXiv:2309.12871; used by ``AnglELoss``), in sentence-transformers 6.2's
    form: ``|cos(x, y) + sin(x, y)|`` of the L2-normalised rows, where the sine term pairs dimension ``i`` with
    ``i + dim/2`` (the rows read as complex vectors: real half, imaginary half; an odd ``dim`` is padded with
    one 0). Row by row, so all-zero columns (sparse embeddings) are harmless. ``[n, dim]`` x ``[n, dim]`` ->
    ``[n]``; two 1-D vectors -> a 0-d tensor; sparse tensors are made dense first."""
    import torch
    import torch.nn.functional as F

    x, y = _same_rows(x, y)
    x, y = (t.to_dense() if t.is_sparse else t for t in (x, y))
    if x.shape[1] % 2:
        x, y = F.pad(x, (0, 1)), F.pad(y, (0, 1))
    x, y = F.normalize(x, p=2, dim=1), F.normalize(y, p=2, dim=1)
    cosine = (x * y).sum(dim=1)
    x_real, x_imag = torch.chunk(x, 2, dim=1)
    y_real, y_imag = torch.chunk(y, 2, dim=1)
    sine = (x_imag * y_real - x_real * y_imag).sum(dim=1)
    return torch.abs(cosine + sine)


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


# -- NumPy versions (torch-free) ----------------------------------------------------------------------
def to_array(x: Any) -> np.ndarray:
    """A list / NumPy array (or tensor) as a 2-D floating array; half precision becomes float32."""
    if not isinstance(x, np.ndarray):
        if hasattr(x, "detach"):  # a torch tensor, passed by a caller that has torch loaded anyway
            x = x.detach().float().cpu().numpy()
        elif isinstance(x, (list, tuple)) and x and hasattr(x[0], "detach"):
            x = np.stack([t.detach().float().cpu().numpy() for t in x])
        else:
            x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"Expected embeddings of shape [n, dim] (or [dim]), got shape {tuple(x.shape)}")
    if x.dtype == np.float16 or not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    return x


def _np_pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = to_array(a), to_array(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"Cannot compare embeddings of dimension {a.shape[1]} with embeddings of dimension {b.shape[1]}: "
            "were they made by different models (or truncated differently)?"
        )
    if a.dtype != b.dtype:
        a, b = a.astype(np.float64), b.astype(np.float64)
    return a, b


def _np_unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _np_cdist(a: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    diff = a[:, None, :] - b[None, :, :]
    return np.sqrt((diff**2).sum(-1)) if p == 2 else np.abs(diff).sum(-1)


_NP_ALL_PAIRS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "cosine": lambda a, b: _np_unit(a) @ _np_unit(b).T,
    "dot": lambda a, b: a @ b.T,
    "euclidean": lambda a, b: -_np_cdist(a, b, 2),
    "manhattan": lambda a, b: -_np_cdist(a, b, 1),
}
_NP_PAIRWISE: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "cosine": lambda a, b: (_np_unit(a) * _np_unit(b)).sum(-1),
    "dot": lambda a, b: (a * b).sum(-1),
    "euclidean": lambda a, b: -np.sqrt(((a - b) ** 2).sum(-1)),
    "manhattan": lambda a, b: -np.abs(a - b).sum(-1),
}


def np_similarity_fn(name: str | SimilarityFunction) -> Callable[[Any, Any], np.ndarray]:
    """All-pairs ``[n, m]`` similarity on NumPy arrays (same conventions as :func:`similarity_fn`: two
    1-D vectors give ``[1, 1]``)."""
    fn = _NP_ALL_PAIRS[check_similarity_fn_name(name)]
    return lambda a, b: fn(*_np_pair(a, b))


def np_pairwise_similarity_fn(name: str | SimilarityFunction) -> Callable[[Any, Any], np.ndarray]:
    """Row-by-row ``[n]`` similarity on NumPy arrays; two 1-D vectors give a 0-d array, as the torch
    pairwise functions do."""
    fn = _NP_PAIRWISE[check_similarity_fn_name(name)]

    @_one_score_for_vectors
    def pairwise(a: Any, b: Any) -> np.ndarray:
        a, b = _np_pair(a, b)
        if a.shape[0] != b.shape[0]:
            raise ValueError(f"Pairwise similarity needs as many rows in a ({a.shape[0]}) as in b ({b.shape[0]}).")
        return fn(a, b)

    return pairwise
