"""What the multi-vector (ColBERT) losses share: embedding the columns of a batch into per-token embeddings
and scoring masks, each column under its task.

A column's features come from ``MultiVectorEncoderDataCollator``, which records the task it was tokenized for
(``features["task"]``: column 0 ``"query"``, the others ``"document"``, unless ``router_mapping`` says
otherwise); features without one get that positional default. The model runs under that task
(``model(features, task=...)``): the ``MultiVectorMask`` then turns ``attention_mask`` into the scoring mask
(query-expansion tokens in, skiplisted document tokens out), and the losses score ``token_embeddings`` under
it, with gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from sentencekit.losses._base import function_name, hold_model
from sentencekit.losses._gradcache import mini_batch_ranges, slice_rows
from sentencekit.losses._token_batches import cat_token_rows


def with_tasks(sentence_features: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """New feature dicts, each with its ``task``: the one the collator recorded, else ``"query"`` for column 0
    and ``"document"`` for the others (the inputs are not changed)."""
    return [{**features, "task": features.get("task") or ("query" if i == 0 else "document")}
            for i, features in enumerate(sentence_features)]


def embed_tokens(model: Any, features: dict[str, Any]) -> tuple[Tensor, Tensor]:
    """``token_embeddings`` ``[b, tokens, dim]`` and the bool scoring mask ``[b, tokens]`` of one tokenized
    column, the model run under the column's ``task``."""
    out = model(features, task=features.get("task"))
    return out["token_embeddings"], out["attention_mask"].bool()


def embed_tokens_chunked(model: Any, features: dict[str, Any], mini_batch_size: int | None) -> tuple[Tensor, Tensor]:
    """:func:`embed_tokens` over row chunks of ``mini_batch_size`` (each run at its own width, then padded back
    together); ``None``: one forward. The same values either way; every chunk's graph is kept for backward."""
    if mini_batch_size is None:
        return embed_tokens(model, features)
    parts = [embed_tokens(model, slice_rows(features, begin, end))
             for begin, end in mini_batch_ranges(features, mini_batch_size)]
    return cat_token_rows([t for t, _ in parts], [m for _, m in parts])


def check_mini_batch_size(value: int | None, name: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")


def check_single_process(loss: nn.Module) -> None:
    """``NotImplementedError`` for ``gather_across_devices=True`` in a multi-process run (the all-gather of
    document embeddings across ranks is not implemented; in one process it changes nothing)."""
    if getattr(loss, "gather_across_devices", False) and torch.distributed.is_available() \
            and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        raise NotImplementedError(f"{type(loss).__name__}(gather_across_devices=True) is not implemented for "
                                  "multi-process training: set gather_across_devices=False (in-batch negatives "
                                  "from this process only).")


class TokenEmbeddingLoss(nn.Module):
    """Base of the multi-vector losses: holds the model (its torch modules become a submodule, as for the
    other losses) and embeds a batch's columns. ``mini_batch_size`` (``None``: whole columns) bounds how many
    rows one forward runs; it changes padding waste, not values."""

    citation: str | None = None

    def __init__(self, model: Any, mini_batch_size: int | None = None) -> None:
        super().__init__()
        check_mini_batch_size(mini_batch_size, "mini_batch_size")
        hold_model(self, model)
        self.mini_batch_size = mini_batch_size
        self.similarity_fct: Any = None

    def embed_columns(self, sentence_features: Sequence[dict[str, Any]], min_columns: int
                      ) -> tuple[Tensor, Tensor, list[Tensor], list[Tensor]]:
        """``(queries [B, q_tokens, dim], query mask, document columns [B, d_tokens_j, dim], their masks)``.
        Raises ``ValueError`` with fewer than ``min_columns`` columns."""
        if len(sentence_features) < min_columns:
            raise ValueError(f"{type(self).__name__} expects at least {min_columns} input columns (query, "
                             f"then documents), got {len(sentence_features)}.")
        columns = with_tasks(sentence_features)
        queries, query_mask = embed_tokens(self.model, columns[0])
        documents = [embed_tokens_chunked(self.model, features, self.mini_batch_size) for features in columns[1:]]
        return queries, query_mask, [d for d, _ in documents], [m for _, m in documents]

    def get_config_dict(self) -> dict[str, Any]:
        return {"similarity_fct": function_name(self.similarity_fct), "mini_batch_size": self.mini_batch_size}


__all__ = ["TokenEmbeddingLoss", "with_tasks", "embed_tokens", "embed_tokens_chunked", "check_mini_batch_size",
           "check_single_process"]
