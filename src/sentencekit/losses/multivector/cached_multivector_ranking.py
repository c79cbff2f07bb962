"""``CachedMultiVectorMultipleNegativesRankingLoss``: the multi-vector in-batch-negatives loss with GradCache (Gao
et al. 2021, arXiv:2101.06983), as sentence-transformers 6.2's loss of that name. The caching is
:class:`~sentencekit.losses._gradcache.GradCacheMixin`'s, applied to per-token embeddings and their scoring
masks; the loss is :func:`~sentencekit.losses.multivector.multivector_ranking.in_batch_ranking_loss`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor

from sentencekit.late_interaction_scoring import colbert_scores
from sentencekit.losses._citations import GRADCACHE_CITATION
from sentencekit.losses._gradcache import GradCacheMixin
from sentencekit.losses.multivector.multivector_ranking import in_batch_ranking_loss
from sentencekit.losses.multivector.token_columns import (
    TokenEmbeddingLoss,
    check_mini_batch_size,
    check_single_process,
    embed_tokens,
    with_tasks,
)


class CachedMultiVectorMultipleNegativesRankingLoss(GradCacheMixin, TokenEmbeddingLoss):
    """:class:`~sentencekit.losses.multivector.MultiVectorMultipleNegativesRankingLoss` (same columns, same value
    and gradients) with GradCache: every column is embedded ``mini_batch_size`` texts at a time (or, with
    ``mini_batch_num_tokens``, as many texts as hold that many non-padding tokens) without a graph; the loss
    is computed on the whole batch, ``score_mini_batch_size`` queries at a time (default ``mini_batch_size``),
    and its gradients with respect to the token embeddings cached; ``backward()`` re-embeds mini-batch by
    mini-batch (the dropout replayed) and pushes the cached gradients through. So the batch (the number of
    in-batch negatives) can be far larger than what fits in memory at once.

    Raises ``ValueError`` for a non-positive ``scale``, mini-batch size or token budget, and for fewer than
    two columns; ``NotImplementedError`` for ``gather_across_devices=True`` in a multi-process run.

    >>> from sentencekit.losses.multivector import CachedMultiVectorMultipleNegativesRankingLoss
    >>> loss = CachedMultiVectorMultipleNegativesRankingLoss(model, mini_batch_size=8)   # doctest: +SKIP
    """

    citation = GRADCACHE_CITATION

    def __init__(self, model: Any, *, scale: float = 1.0, similarity_fct: Callable[..., Tensor] | None = None,
                 mini_batch_size: int = 32, mini_batch_num_tokens: int | None = None,
                 score_mini_batch_size: int | None = None, gather_across_devices: bool = False,
                 show_progress_bar: bool = False) -> None:
        super().__init__(model, mini_batch_size)
        if not scale > 0:
            raise ValueError(f"scale must be positive (it is 1 / temperature), got {scale!r}")
        check_mini_batch_size(score_mini_batch_size, "score_mini_batch_size")
        self.setup_gradcache(mini_batch_size, mini_batch_num_tokens, show_progress_bar)
        self.scale = scale
        self.similarity_fct = similarity_fct if similarity_fct is not None else colbert_scores
        self.score_mini_batch_size = score_mini_batch_size if score_mini_batch_size is not None else mini_batch_size
        self.gather_across_devices = gather_across_devices

    def embed_mini_batch(self, features: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """Token embeddings and scoring mask of one mini-batch, under its column's task."""
        return embed_tokens(self.model, features)

    def forward(self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None = None) -> Tensor:
        check_single_process(self)
        if len(sentence_features) < 2:
            raise ValueError(f"{type(self).__name__} expects at least 2 input columns (query, then documents), got "
                             f"{len(sentence_features)}.")

        def loss_fn(embeddings: list[Tensor], masks: list[Any], with_backward: bool) -> tuple[Tensor, dict]:
            value = in_batch_ranking_loss(embeddings[0], masks[0], embeddings[1:], masks[1:], self.similarity_fct,
                                          self.scale, self.score_mini_batch_size, with_backward=with_backward)
            return value, {}

        # each column's task is stamped first: the backward pass re-embeds under the same one
        return self.run_gradcache(with_tasks(sentence_features), loss_fn)[0]

    def get_config_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, **super().get_config_dict(), "mini_batch_num_tokens": self.mini_batch_num_tokens,
                "score_mini_batch_size": self.score_mini_batch_size,
                "gather_across_devices": self.gather_across_devices}


__all__ = ["CachedMultiVectorMultipleNegativesRankingLoss"]
