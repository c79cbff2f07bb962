"""``CachedSpladeLoss``: :class:`~sentencekit.losses.sparse.SpladeLoss` computed with GradCache (Gao et al.,
"Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup", arXiv:2101.06983), so a SPLADE
model trains on batches far larger than fit in memory at once. Arguments and output as sentence-transformers
6.2 (``sentence_transformers.sparse_encoder.losses.CachedSpladeLoss``); the machinery is
:mod:`sentencekit.losses._gradcache`'s."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from sentencekit.losses._citations import GRADCACHE_CITATION
from sentencekit.losses._gradcache import GradCacheMixin
from sentencekit.losses.sparse.splade_loss import SpladeLoss


class CachedSpladeLoss(GradCacheMixin, SpladeLoss):
    """``SpladeLoss`` (same arguments, same dict, same value and gradients) with GradCache: every column is
    embedded ``mini_batch_size`` texts at a time (or, with ``mini_batch_num_tokens``, as many texts as hold
    that many non-padding tokens) without a graph; the whole loss (inner loss + FLOPS regularisers) is
    computed on the whole batch and its gradients with respect to the embeddings cached; ``backward()``
    re-embeds mini-batch by mini-batch (replaying the dropout) and pushes the cached gradients through. Memory
    is that of one mini-batch of activations plus the whole batch's ``[batch, vocab]`` embeddings and the
    inner loss's score matrix.

    ``forward`` returns the ``SpladeLoss`` dict (``base_loss`` or the inner dict's keys,
    ``document_regularizer_loss``, ``query_regularizer_loss``; 0-d tensors). Its values are SpladeLoss's;
    gradients flow through its sum only (what the trainer trains on: the first entry carries the total's
    gradient, the others are detached, for logging). It is a ``SpladeLoss``, so the trainer adds the
    regulariser warm-up callback for it. ``compute_loss_from_embeddings`` is SpladeLoss's (no caching).

    Raises ``ValueError`` for a non-positive ``mini_batch_size`` / ``mini_batch_num_tokens``, and as
    ``SpladeLoss`` for an inner loss without ``compute_loss_from_embeddings``.

    >>> from sentencekit import SparseEncoder
    >>> from sentencekit.losses.sparse import CachedSpladeLoss, SparseMultipleNegativesRankingLoss
    >>> model = SparseEncoder("naver/splade-cocondenser-ensembledistil")             # doctest: +SKIP
    >>> loss = CachedSpladeLoss(model, SparseMultipleNegativesRankingLoss(model), document_regularizer_weight=3e-5,
    ...                         query_regularizer_weight=5e-5, mini_batch_size=16)  # doctest: +SKIP
    """

    citation = GRADCACHE_CITATION + SpladeLoss.citation

    def __init__(
        self,
        model: Any,
        loss: nn.Module,
        document_regularizer_weight: float,
        query_regularizer_weight: float | None = None,
        document_regularizer: nn.Module | None = None,
        query_regularizer: nn.Module | None = None,
        document_regularizer_threshold: int | None = None,
        query_regularizer_threshold: int | None = None,
        use_document_regularizer_only: bool = False,
        mini_batch_size: int = 32,
        mini_batch_num_tokens: int | None = None,
        show_progress_bar: bool = False,
    ) -> None:
        super().__init__(model, loss, document_regularizer_weight, query_regularizer_weight=query_regularizer_weight,
                         document_regularizer=document_regularizer, query_regularizer=query_regularizer,
                         document_regularizer_threshold=document_regularizer_threshold,
                         query_regularizer_threshold=query_regularizer_threshold,
                         use_document_regularizer_only=use_document_regularizer_only)
        self.setup_gradcache(mini_batch_size, mini_batch_num_tokens, show_progress_bar)

    def calculate_loss(self, embeddings: list[Tensor], labels: Tensor | None, with_backward: bool = False
                       ) -> dict[str, Tensor]:
        """SpladeLoss's dict from whole-batch embeddings; with ``with_backward``, its sum is backpropagated
        into the embeddings and the parts come back detached."""
        parts = self.compute_loss_from_embeddings(embeddings, labels)
        if with_backward:
            torch.stack(list(parts.values())).sum().backward()
            parts = {key: value.detach() for key, value in parts.items()}
        return parts

    def forward(self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None = None
                ) -> dict[str, Tensor]:  # type: ignore[override]
        total, parts = self.forward_cached(sentence_features, labels)
        if not total.requires_grad:
            return parts
        # Only ``total`` reaches the GradCache hook: the first part becomes ``total - (the others)``, so the
        # dict still sums to ``total`` and carries its gradient, while each value stays what it was.
        first, *others = parts
        rest = sum((parts[key] for key in others), torch.zeros_like(total))
        return {first: total - rest, **{key: parts[key] for key in others}}

    def get_config_dict(self) -> dict[str, Any]:
        return {**super().get_config_dict(), "mini_batch_size": self.mini_batch_size,
                "mini_batch_num_tokens": self.mini_batch_num_tokens}
