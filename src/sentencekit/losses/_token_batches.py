"""Padded per-token embeddings as multi-vector (ColBERT) losses handle them: a column is ``[batch, tokens, dim]``
float plus its ``[batch, tokens]`` bool scoring mask, and pieces embedded at different widths (mini-batches,
columns padded each to their own longest text) are zero-padded on the token axis before they are joined.

>>> import torch
>>> a, b = torch.ones(2, 3, 4), torch.ones(1, 5, 4)
>>> tokens, mask = cat_token_rows([a, b], [torch.ones(2, 3, dtype=torch.bool), torch.ones(1, 5, dtype=torch.bool)])
>>> tuple(tokens.shape), mask.sum(dim=1).tolist()
((3, 5, 4), [3, 3, 5])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def pad_tokens(embeddings: Tensor, mask: Tensor, width: int) -> tuple[Tensor, Tensor]:
    """``embeddings`` ``[b, t, d]`` and ``mask`` ``[b, t]`` zero-padded (mask False) to ``width >= t`` tokens."""
    extra = width - embeddings.shape[1]
    if extra == 0:
        return embeddings, mask
    return F.pad(embeddings, (0, 0, 0, extra)), F.pad(mask, (0, extra))


def cat_token_rows(embeddings: Sequence[Tensor], masks: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Row blocks ``[b_i, t_i, d]`` (and masks ``[b_i, t_i]``) concatenated to ``[sum b_i, max t_i, d]``."""
    width = max(e.shape[1] for e in embeddings)
    padded = [pad_tokens(e, m, width) for e, m in zip(embeddings, masks, strict=True)]
    return torch.cat([e for e, _ in padded]), torch.cat([m for _, m in padded])


def stack_token_columns(embeddings: Sequence[Tensor], masks: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Document columns ``[b, t_j, d]`` (and masks ``[b, t_j]``) stacked per query: ``[b, columns, max t_j, d]``
    and ``[b, columns, max t_j]``, the layout of the training scorers' documents
    (:mod:`sentencekit.late_interaction_scoring`)."""
    width = max(e.shape[1] for e in embeddings)
    padded = [pad_tokens(e, m, width) for e, m in zip(embeddings, masks, strict=True)]
    return torch.stack([e for e, _ in padded], dim=1), torch.stack([m for _, m in padded], dim=1)


__all__ = ["pad_tokens", "cat_token_rows", "stack_token_columns"]
