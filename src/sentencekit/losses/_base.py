"""Shared pieces of the bi-encoder losses: the embedding-loss base class and small helpers."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def fullname(obj: Any) -> str:
    """Dotted name of a function, class or module instance (for configs), e.g. ``torch.nn.modules.loss.MSELoss``."""
    target = obj if callable(obj) and not isinstance(obj, nn.Module) else type(obj)
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)
    return f"{module}.{name}" if module and module != "builtins" else name


def function_name(fn: Callable[..., Any]) -> str:
    """Short name of a similarity / distance function for configs (``cos_sim``, ``pairwise_dot_score``); with
    its settings for a ``functools.partial`` (``colbert_scores(chunk_elements=1000)``) and for a configured
    scorer object with ``get_config_dict`` (``XTRScores(top_k=64, chunk_elements=None)``), as
    sentence-transformers 6.2 writes them."""
    if isinstance(fn, functools.partial):
        settings = ", ".join(f"{key}={value!r}" for key, value in fn.keywords.items())
        name = function_name(fn.func)
        return f"{name}({settings})" if settings else name
    config = getattr(fn, "get_config_dict", None)
    if config is not None and not isinstance(fn, nn.Module):
        return f"{type(fn).__name__}(" + ", ".join(f"{key}={value!r}" for key, value in config().items()) + ")"
    return getattr(fn, "__name__", None) or fullname(fn)


def shrink(embeddings: Tensor, dim: int) -> Tensor:
    """Keep the first ``dim`` dimensions and L2-renormalise (Matryoshka truncation)."""
    if dim > embeddings.shape[-1]:
        raise ValueError(f"Cannot truncate embeddings of dimension {embeddings.shape[-1]} to {dim} dimensions.")
    return F.normalize(embeddings[..., :dim], p=2, dim=-1)


def hold_model(loss: nn.Module, model: Any) -> None:
    """``loss.model = model``, with the model's torch modules registered as a submodule of the loss
    (``model_network``): ``loss.parameters()``, ``loss.to()`` and ``loss.train()`` then cover the model's
    weights, as in sentence-transformers, where the model itself is a submodule of its loss."""
    loss.model = model
    network = getattr(model, "network", None) if not isinstance(model, nn.Module) else None
    if network is not None:
        loss.add_module("model_network", network)


class EmbeddingLoss(nn.Module):
    """Base class of the bi-encoder losses that work on sentence embeddings.

    ``forward`` embeds every input column with the model and hands the embeddings to
    :meth:`compute_loss_from_embeddings`, which wrappers (``MatryoshkaLoss``, ``AdaptiveLayerLoss``) call
    directly with transformed embeddings.
    """

    citation: str | None = None

    def __init__(self, model: Any) -> None:
        super().__init__()
        hold_model(self, model)

    def embed(self, sentence_features: Sequence[dict[str, Any]]) -> list[Tensor]:
        return [self.model(features)["sentence_embedding"] for features in sentence_features]

    def forward(self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None = None) -> Tensor:
        return self.compute_loss_from_embeddings(self.embed(sentence_features), labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        raise NotImplementedError

    def get_config_dict(self) -> dict[str, Any]:
        return {}


def check_columns(loss: nn.Module, embeddings: Sequence[Tensor], expected: int | tuple[int, int | None]) -> None:
    """Raise a clear error when a loss gets the wrong number of input columns."""
    low, high = (expected, expected) if isinstance(expected, int) else expected
    n = len(embeddings)
    if n < low or (high is not None and n > high):
        wanted = str(low) if low == high else f"at least {low}" if high is None else f"{low} to {high}"
        raise ValueError(f"{type(loss).__name__} expects {wanted} input columns, got {n}.")


def labels_on(labels: Tensor | None, like: Tensor, loss: nn.Module, dtype: Any = None) -> Tensor:
    """``labels`` as a tensor on ``like``'s device (an error naming the loss when they are missing)."""
    if labels is None:
        raise ValueError(f"{type(loss).__name__} needs labels (a 'label' or 'score' column).")
    labels = labels if isinstance(labels, Tensor) else torch.as_tensor(labels)
    return labels.to(device=like.device, dtype=dtype if dtype is not None else labels.dtype)
