"""``SpladePooling``: masked-language-model logits -> one sparse, vocabulary-sized vector per text.

The SPLADE term weighting: for logits ``L`` ``[b, tokens, vocab]`` and the attention mask ``m``,
``w = pool_t log(1 + relu(L * m))`` (``pool`` is max or sum over tokens). Formal et al., "SPLADE: Sparse
Lexical and Expansion Model for First Stage Ranking" (SIGIR 2021) and "SPLADE v2" (arXiv:2109.10086,
which introduced max pooling); behaviour and on-disk format as sentence-transformers 6.2
(``sentence_transformers.sparse_encoder.modules.splade_pooling.SpladePooling``).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import torch
from torch import Tensor

from sentencekit.modules.base import Module

POOLING_STRATEGIES = ("max", "sum")
ACTIVATIONS = ("relu", "log1p_relu")


class SpladePooling(Module):
    """SPLADE pooling of MLM logits (``features["token_embeddings"]``, ``[b, tokens, vocab]``, from a
    ``Transformer(transformer_task="fill-mask")``) into ``features["sentence_embedding"]`` ``[b, vocab]``
    (the logits' dtype; non-negative; padded positions count as 0).

    - ``activation_function="relu"``: ``a = log1p(relu(x))`` (SPLADE's log-saturation);
      ``"log1p_relu"``: ``a = log1p(log1p(relu(x)))`` (a second saturation), with ``x = logits * mask``.
    - ``pooling_strategy``: ``"max"`` (SPLADE v2 / SPLADE++) or ``"sum"`` (SPLADE v1) over tokens.
    - ``embedding_dimension``: the vocabulary size (the legacy key ``word_embedding_dimension`` is read
      too); ``None`` is filled in at the first forward.
    - ``chunk_size``: tokens per chunk along the sequence (less peak memory, same result); runtime only,
      never saved.

    Raises ``ValueError`` for an unknown strategy or activation, or a ``chunk_size`` that is not a positive
    int. Saves ``config.json`` with ``pooling_strategy``, ``activation_function`` and
    ``embedding_dimension``, as sentence-transformers 6.2 does.

    >>> import torch
    >>> pool = SpladePooling("max")
    >>> logits = torch.tensor([[[1.0, -2.0, 0.0], [3.0, 0.5, 9.0]]])   # 1 text, 2 tokens, vocab 3
    >>> out = pool({"token_embeddings": logits, "attention_mask": torch.tensor([[1, 0]])})
    >>> out["sentence_embedding"]                     # the padded token (weight 9) does not count
    tensor([[0.6931, 0.0000, 0.0000]])
    >>> pool.get_sentence_embedding_dimension()
    3
    """

    st_type: ClassVar[str] = "sentence_transformers.sparse_encoder.modules.splade_pooling.SpladePooling"
    config_keys: ClassVar[list[str]] = ["pooling_strategy", "activation_function", "embedding_dimension"]

    def __init__(
        self,
        pooling_strategy: str = "max",
        activation_function: str = "relu",
        embedding_dimension: int | None = None,
        chunk_size: int | None = None,
        *,
        word_embedding_dimension: int | None = None,
    ) -> None:
        super().__init__()
        if pooling_strategy not in POOLING_STRATEGIES:
            raise ValueError(f"pooling_strategy must be one of {POOLING_STRATEGIES}, got {pooling_strategy!r}")
        if activation_function not in ACTIVATIONS:
            raise ValueError(f"activation_function must be one of {ACTIVATIONS}, got {activation_function!r}")
        self.pooling_strategy = pooling_strategy
        self.activation_function = activation_function
        dim = embedding_dimension if embedding_dimension is not None else word_embedding_dimension
        self.embedding_dimension: int | None = None if dim is None else int(dim)
        self.chunk_size = chunk_size

    @property
    def chunk_size(self) -> int | None:
        """Tokens per chunk along the sequence (``None``: all at once)."""
        return self._chunk_size

    @chunk_size.setter
    def chunk_size(self, value: int | None) -> None:
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise ValueError(f"chunk_size must be a positive integer or None, got {value!r}")
        self._chunk_size = value

    @property
    def word_embedding_dimension(self) -> int | None:
        """The legacy (sentence-transformers v5) name of :attr:`embedding_dimension`."""
        return self.embedding_dimension

    def get_sentence_embedding_dimension(self) -> int | None:
        return self.embedding_dimension

    def _activate(self, logits: Tensor, mask: Tensor) -> Tensor:
        x = torch.log1p(torch.relu(logits * mask))
        return torch.log1p(x) if self.activation_function == "log1p_relu" else x

    def _pool(self, x: Tensor) -> Tensor:
        return x.amax(dim=1) if self.pooling_strategy == "max" else x.sum(dim=1)

    def forward(self, features: dict[str, Any]) -> dict[str, Any]:
        logits: Tensor = features["token_embeddings"]
        mask = features.get("attention_mask")
        if mask is None:
            mask = torch.ones(logits.shape[:2], device=logits.device)
        mask = mask.unsqueeze(-1).to(logits.dtype)
        step = self.chunk_size or logits.shape[1]
        pooled: Tensor | None = None
        for start in range(0, logits.shape[1], step):
            part = self._pool(self._activate(logits[:, start:start + step], mask[:, start:start + step]))
            if pooled is None:
                pooled = part
            else:
                pooled = torch.maximum(pooled, part) if self.pooling_strategy == "max" else pooled + part
        if pooled is None:  # no tokens at all
            pooled = logits.new_zeros((logits.shape[0], logits.shape[-1]))
        if self.embedding_dimension is None:
            self.embedding_dimension = int(pooled.shape[-1])
        return {**features, "sentence_embedding": pooled}

    def get_config_dict(self) -> dict[str, Any]:
        return {"pooling_strategy": self.pooling_strategy, "activation_function": self.activation_function,
                "embedding_dimension": self.embedding_dimension}

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs: Any) -> SpladePooling:
        config = cls.load_config(path)
        known = {"pooling_strategy", "activation_function", "embedding_dimension", "word_embedding_dimension",
                 "chunk_size"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"{os.path.join(path, cls.config_file_name)}: unknown SpladePooling keys {unknown}.")
        return cls(**config)

    def __repr__(self) -> str:
        return (f"SpladePooling(pooling_strategy={self.pooling_strategy!r}, "
                f"activation_function={self.activation_function!r}, embedding_dimension={self.embedding_dimension})")


__all__ = ["SpladePooling", "POOLING_STRATEGIES", "ACTIVATIONS"]
