"""``MultiVectorMultipleNegativesRankingLoss``: InfoNCE with in-batch negatives for multi-vector (ColBERT) models,
scored by MaxSim (or any training scorer), as sentence-transformers 6.2's loss of that name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from sentencekit.late_interaction_scoring import colbert_scores
from sentencekit.losses._citations import MNRL_CITATION
from sentencekit.losses._token_batches import stack_token_columns
from sentencekit.losses.multivector.token_columns import (
    TokenEmbeddingLoss,
    check_mini_batch_size,
    check_single_process,
)


def in_batch_ranking_loss(queries: Tensor, query_mask: Tensor, documents: Sequence[Tensor],
                          document_masks: Sequence[Tensor], similarity_fct: Callable[..., Tensor], scale: float,
                          score_mini_batch_size: int | None, with_backward: bool = False) -> Tensor:
    """``mean_i CE(scale * scores_i, i * N)``: query ``i`` (``[B, q_tokens, dim]``) against every document of the
    batch (``N`` columns ``[B, d_tokens_j, dim]``, stacked per query), its positive at column ``i * N`` of the
    query-major scores (:func:`~sentencekit.late_interaction_scoring.colbert_scores`' layout). Scored
    ``score_mini_batch_size`` queries at a time (``None``: all at once; the value is the same); with
    ``with_backward`` each chunk's part is backpropagated into the inputs (leaf tensors) as soon as it is
    computed, and a detached 0-d value returned (GradCache)."""
    stacked, stacked_mask = stack_token_columns(documents, document_masks)
    batch, per_query = len(queries), len(documents)
    targets = torch.arange(batch, device=queries.device) * per_query
    step = score_mini_batch_size or batch
    total = torch.zeros((), device=queries.device)
    for begin in range(0, batch, step):
        end = begin + step
        scores = similarity_fct(queries[begin:end], stacked, queries_mask=query_mask[begin:end],
                                documents_mask=stacked_mask)
        # the sum over the chunk divided by the whole batch: the chunks add up to the batch mean
        part = F.cross_entropy(scores * scale, targets[begin:end].to(scores.device), reduction="sum") / batch
        if with_backward:
            part.backward()
            part = part.detach()
        total = total + part
    return total


class MultiVectorMultipleNegativesRankingLoss(TokenEmbeddingLoss):
    """(query, positive[, negative_1, ...]) columns, no labels: for query ``i`` its positive must score highest
    among all documents of the batch (the positives of the other queries and every hard negative). Loss:
    ``cross_entropy(scale * scores, arange(B) * N)`` with ``scores = similarity_fct(queries, documents)``
    ``[B, B * N]`` (default :func:`~sentencekit.late_interaction_scoring.colbert_scores`, MaxSim; any scorer
    with its signature, e.g. ``XTRScores``). ``scale`` is 1 / temperature, 1 by default: MaxSim sums one
    similarity per query token, so it is already large (with MeanMaxSim scorers use about the query length).
    Henderson et al. 2017 (in-batch negatives); ColBERT, Khattab & Zaharia 2020; sentence-transformers 6.2.

    ``mini_batch_size``: rows per forward for the document columns (``None``: whole columns); bounds padding
    waste, not memory (every chunk's graph is kept; for memory use
    :class:`CachedMultiVectorMultipleNegativesRankingLoss`). ``score_mini_batch_size``: queries scored at once
    (``None``: all). Neither changes the value. ``gather_across_devices`` changes nothing in one process and
    raises ``NotImplementedError`` in a multi-process run. Raises ``ValueError`` for a non-positive ``scale``
    or chunk size, and for fewer than two columns.

    >>> from sentencekit import MultiVectorEncoder
    >>> from sentencekit.losses.multivector import MultiVectorMultipleNegativesRankingLoss
    >>> model = MultiVectorEncoder("sentence-transformers/all-MiniLM-L6-v2")        # doctest: +SKIP
    >>> loss = MultiVectorMultipleNegativesRankingLoss(model)                       # doctest: +SKIP
    >>> columns = [model.tokenize(["How do I get a refund?", "Is it sunny?"], task="query"),
    ...            model.tokenize(["Refunds take 5 days.", "Paris is mild today."], task="document")]  # doctest: +SKIP
    >>> loss(columns, None).backward()                                              # doctest: +SKIP
    """

    citation = MNRL_CITATION

    def __init__(self, model: Any, *, scale: float = 1.0, similarity_fct: Callable[..., Tensor] | None = None,
                 mini_batch_size: int | None = None, score_mini_batch_size: int | None = None,
                 gather_across_devices: bool = False) -> None:
        super().__init__(model, mini_batch_size)
        if not scale > 0:
            raise ValueError(f"scale must be positive (it is 1 / temperature), got {scale!r}")
        check_mini_batch_size(score_mini_batch_size, "score_mini_batch_size")
        self.scale = scale
        self.similarity_fct = similarity_fct if similarity_fct is not None else colbert_scores
        self.score_mini_batch_size = score_mini_batch_size
        self.gather_across_devices = gather_across_devices

    def forward(self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None = None) -> Tensor:
        check_single_process(self)
        queries, query_mask, documents, document_masks = self.embed_columns(sentence_features, 2)
        return in_batch_ranking_loss(queries, query_mask, documents, document_masks, self.similarity_fct, self.scale,
                                     self.score_mini_batch_size)

    def get_config_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, **super().get_config_dict(), "score_mini_batch_size": self.score_mini_batch_size,
                "gather_across_devices": self.gather_across_devices}


__all__ = ["MultiVectorMultipleNegativesRankingLoss", "in_batch_ranking_loss"]
