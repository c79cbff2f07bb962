"""Token pooling for multi-vector models: fewer vectors per document, less index storage.

Three ways to use one, as in sentence-transformers 6.2 (``multi_vector_encoder.modules.token_pooling``):
as the last module of a ``MultiVectorEncoder`` (saved with the model), per call
(``encode(..., token_pooling=...)``), or on stored embeddings (:meth:`BaseTokenPooling.pool`). Pooling
is not idempotent: combining two of them pools twice.

- :class:`HierarchicalTokenPooling`: Ward clustering of similar tokens (see :mod:`sentencekit.token_clusters`
  for the method and the NumPy version the torch-free backend runs);
- :class:`LambdaTokenPooling`: any function ``[n, dim] -> [m, dim]`` (cannot be saved).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sentencekit.modules.base import Module
from sentencekit.token_clusters import check_pooling, num_clusters, ward_labels


def _tasks(tasks: str | list[str] | None) -> list[str]:
    if isinstance(tasks, str):
        return [tasks]
    return list(tasks) if tasks is not None else ["document"]


def _unbind(embeddings: Tensor, attention_mask: Tensor | None, padding_side: str) -> list[Tensor]:
    """The rows of a padded ``[b, t, d]`` tensor: by the mask, else by trimming all-zero rows on
    ``padding_side``."""
    if attention_mask is not None:
        return [e[m] for e, m in zip(embeddings, attention_mask.bool())]
    rows = []
    for e in embeddings:
        real = e.abs().sum(dim=-1).gt(0).nonzero(as_tuple=True)[0]
        if real.numel() == 0:
            rows.append(e[:0])
        else:
            rows.append(e[: int(real[-1]) + 1] if padding_side == "right" else e[int(real[0]):])
    return rows


def _pad(rows: list[Tensor], padding_side: str) -> Tensor:
    if padding_side == "right":
        return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
    flipped = torch.nn.utils.rnn.pad_sequence([r.flip(0) for r in rows], batch_first=True)
    return flipped.flip(1)


class BaseTokenPooling(Module):
    """A token pooling: subclasses implement :meth:`pool_one` (``[n, dim] -> [m, dim]`` for one input).

    ``tasks``: the tasks it applies to (a string counts as one; default ``["document"]``; inputs encoded
    without a task count as documents); other inputs pass through. As a module, ``forward`` pools each row's
    scored tokens (``features["attention_mask"]``, the scoring mask), right-pads the results and writes the
    new mask.
    """

    config_keys: ClassVar[list[str]] = ["tasks"]
    forward_kwargs: ClassVar[set[str]] = {"task"}

    def __init__(self, *, tasks: str | list[str] | None = None) -> None:
        super().__init__()
        self.tasks = _tasks(tasks)

    def applies_to(self, task: str | None) -> bool:
        """Whether inputs encoded for ``task`` are pooled (``None`` counts as ``"document"``)."""
        return (task or "document") in self.tasks

    def pool_one(self, embedding: Tensor) -> Tensor:
        """Pool one input's ``[n, dim]`` vectors into ``[m, dim]``."""
        raise NotImplementedError

    def forward(self, features: dict[str, Any], task: str | None = None) -> dict[str, Any]:
        if not self.applies_to(task) or features["token_embeddings"].shape[0] == 0:
            return features
        tokens: Tensor = features["token_embeddings"]
        rows = [self.pool_one(e[m]) for e, m in zip(tokens, features["attention_mask"].bool())]
        lengths = torch.tensor([len(r) for r in rows], device=tokens.device)
        mask = torch.arange(int(lengths.max()), device=tokens.device).unsqueeze(0) < lengths.unsqueeze(1)
        return {**features, "token_embeddings": _pad(rows, "right").to(tokens.device), "attention_mask": mask}

    def pool(self, embeddings: list[Tensor] | Tensor, *, task: str | None = None,
             attention_mask: Tensor | None = None, padding_side: str = "right") -> list[Tensor] | Tensor:
        """Pool stored embeddings: a list of ``[n_i, dim]`` tensors gives a list of ``[m_i, dim]``; a padded
        ``[b, t, dim]`` tensor (its rows by ``attention_mask``, else by its all-zero padding on
        ``padding_side``) gives a padded ``[b, m, dim]`` tensor (padded on ``padding_side``). Inputs of a
        task this pooling does not apply to come back unchanged. Raises ``ValueError`` for other shapes or a
        ``padding_side`` other than ``"left"`` / ``"right"``."""
        if not self.applies_to(task):
            return embeddings
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}.")
        if isinstance(embeddings, Tensor):
            if embeddings.dim() != 3:
                raise ValueError(f"Tensor input must be 3-D [batch, tokens, dim]; got shape {tuple(embeddings.shape)}.")
            if embeddings.shape[0] == 0:
                return embeddings.new_zeros((0, 0, embeddings.shape[-1]))
            return _pad([self.pool_one(e) for e in _unbind(embeddings, attention_mask, padding_side)], padding_side)
        if isinstance(embeddings, (list, tuple)):
            if any(getattr(e, "dim", lambda: 0)() != 2 for e in embeddings):
                raise ValueError("List input must hold 2-D [tokens, dim] tensors.")
            return [self.pool_one(e) for e in embeddings]
        raise ValueError(f"embeddings must be a list of 2-D tensors or a 3-D tensor, got {type(embeddings).__name__}.")

    def pool_arrays(self, rows: list[np.ndarray], *, task: str | None = None) -> list[np.ndarray]:
        """:meth:`pool` for NumPy rows (the torch-free backend's outputs): NumPy ``[m_i, dim]`` arrays back.
        This base version runs :meth:`pool_one` on tensors; :class:`HierarchicalTokenPooling` stays in NumPy."""
        if not self.applies_to(task):
            return rows
        return [self.pool_one(torch.from_numpy(np.asarray(r))).detach().cpu().numpy() for r in rows]


class HierarchicalTokenPooling(BaseTokenPooling):
    """Merge each document's similar token vectors by Ward clustering, keeping about ``1 / pool_factor`` of them
    (see :mod:`sentencekit.token_clusters`). The first ``num_protected_tokens`` (``[CLS]``) are kept apart;
    ``normalize_embeddings`` L2-normalises every output vector (a saved config without the key loads as
    ``False``, as in sentence-transformers). Place it after a token ``Normalize``. Needs scipy.

    Raises ``ValueError`` for ``pool_factor < 1`` or a negative ``num_protected_tokens``.

    >>> pooling = HierarchicalTokenPooling(pool_factor=2)
    >>> pooling.pool([torch.nn.functional.normalize(torch.randn(9, 4), dim=-1)])[0].shape   # 1 + 8 // 2
    torch.Size([5, 4])
    """

    st_type: ClassVar[str] = "sentence_transformers.multi_vector_encoder.modules.token_pooling.HierarchicalTokenPooling"
    config_keys: ClassVar[list[str]] = ["pool_factor", "num_protected_tokens", "normalize_embeddings", "tasks"]

    def __init__(self, pool_factor: float = 1.0, *, num_protected_tokens: int = 1, normalize_embeddings: bool = True,
                 tasks: str | list[str] | None = None) -> None:
        super().__init__(tasks=tasks)
        check_pooling(pool_factor, num_protected_tokens)
        self.pool_factor = pool_factor
        self.num_protected_tokens = num_protected_tokens
        self.normalize_embeddings = bool(normalize_embeddings)

    def forward(self, features: dict[str, Any], task: str | None = None) -> dict[str, Any]:
        if self.pool_factor <= 1:
            if self.normalize_embeddings and self.applies_to(task):
                return {**features, "token_embeddings": _normalize(features["token_embeddings"])}
            return features
        return super().forward(features, task=task)

    def pool_one(self, embedding: Tensor) -> Tensor:
        protected, to_pool = embedding[: self.num_protected_tokens], embedding[self.num_protected_tokens:]
        clusters = num_clusters(len(to_pool), self.pool_factor)
        if clusters < len(to_pool):
            vectors = to_pool.detach().float().cpu()  # clustering picks assignments; gradients reach the means
            labels = torch.from_numpy(ward_labels((1 - vectors @ vectors.T).clamp_(0, 2).numpy(), clusters))
            count = int(labels.max()) + 1
            source = to_pool.cpu()
            sums = torch.zeros(count, source.shape[1], dtype=source.dtype).index_add(0, labels, source)
            means = sums / torch.bincount(labels, minlength=count).unsqueeze(1).to(source.dtype)
            embedding = torch.cat([protected, means.to(embedding.device)])
        return _normalize(embedding) if self.normalize_embeddings else embedding

    def pool_arrays(self, rows: list[np.ndarray], *, task: str | None = None) -> list[np.ndarray]:
        from sentencekit.token_clusters import pool_rows

        return pool_rows(rows, self.get_config_dict()) if self.applies_to(task) else rows

    def get_config_dict(self) -> dict[str, Any]:
        return {"pool_factor": self.pool_factor, "num_protected_tokens": self.num_protected_tokens,
                "normalize_embeddings": self.normalize_embeddings, "tasks": list(self.tasks)}

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs: Any) -> HierarchicalTokenPooling:
        config = cls.load_config(path)
        unknown = sorted(set(config) - set(cls.config_keys))
        if unknown:
            raise ValueError(f"{os.path.join(path, cls.config_file_name)}: unknown HierarchicalTokenPooling keys "
                             f"{unknown}.")
        return cls(config.get("pool_factor", 1.0), num_protected_tokens=config.get("num_protected_tokens", 1),
                   normalize_embeddings=config.get("normalize_embeddings", False), tasks=config.get("tasks"))

    def __repr__(self) -> str:
        return f"HierarchicalTokenPooling({self.get_config_dict()})"


class LambdaTokenPooling(BaseTokenPooling):
    """A token pooling from a function ``pool_fn(embedding [n, dim]) -> [m, dim]``, applied to each input.
    It cannot be saved (a Python callable is not a config): :meth:`save` raises ``NotImplementedError``; in a
    multi-process pool the function must be picklable (a module-level function, not a lambda).

    >>> halve = LambdaTokenPooling(lambda e: e[: max(len(e) // 2, 1)])
    >>> halve.pool([torch.ones(6, 4)])[0].shape
    torch.Size([3, 4])
    """

    def __init__(self, pool_fn: Callable[[Tensor], Tensor], *, tasks: str | list[str] | None = None) -> None:
        super().__init__(tasks=tasks)
        if not callable(pool_fn):
            raise TypeError(f"pool_fn must be callable, got {type(pool_fn).__name__}.")
        self.pool_fn = pool_fn

    def pool_one(self, embedding: Tensor) -> Tensor:
        return self.pool_fn(embedding)

    def save(self, output_path: str | os.PathLike, safe_serialization: bool = True) -> None:
        raise NotImplementedError("LambdaTokenPooling wraps a Python function and cannot be saved: remove it from the "
                                  "modules before saving (pass it per call, encode(..., token_pooling=...)), or write "
                                  "a BaseTokenPooling subclass with a config.")


def _normalize(x: Tensor) -> Tensor:
    """L2-normalise the last axis, in float32 for half-precision inputs (then cast back)."""
    if x.dtype in (torch.float16, torch.bfloat16):
        return F.normalize(x.float(), dim=-1).to(x.dtype)
    return F.normalize(x, dim=-1)


__all__ = ["BaseTokenPooling", "HierarchicalTokenPooling", "LambdaTokenPooling"]
