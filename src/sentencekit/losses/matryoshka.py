"""MatryoshkaLoss: train embeddings that stay good when truncated to their first dimensions."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from functools import partial
from typing import Any

from torch import Tensor, nn

from sentencekit.losses._base import EmbeddingLoss, shrink
from sentencekit.losses._gradcache import CachedEmbeddingLoss

logger = logging.getLogger(__name__)


class MatryoshkaLoss(EmbeddingLoss):
    """Wraps another loss: ``sum(weight_d * loss(embeddings truncated to d dims and L2-renormalised))`` over
    ``matryoshka_dims`` (all of them, or ``n_dims_per_step`` sampled ones per step).

    Texts are embedded once at full size; the inner loss's ``compute_loss_from_embeddings`` runs on each
    truncation. The model is never patched. With a Cached... (GradCache) inner loss, the truncations are
    handed to it as embedding views, so caching keeps working.

    >>> from sentencekit import SentenceTransformer
    >>> from sentencekit.losses import MatryoshkaLoss, MultipleNegativesRankingLoss
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")       # doctest: +SKIP
    >>> dim = model.get_sentence_embedding_dimension()  # 384                        # doctest: +SKIP
    >>> loss = MatryoshkaLoss(model, MultipleNegativesRankingLoss(model), [dim, dim // 2, dim // 4])  # doctest: +SKIP
    >>> columns = [["How do I get a refund?", "Is it sunny?"], ["Refunds take 5 days.", "Paris is mild today."]]
    >>> loss([model.tokenize(texts) for texts in columns], None).backward()         # doctest: +SKIP
    """

    citation = """
@misc{kusupati2024matryoshka,
    title={Matryoshka Representation Learning},
    author={Aditya Kusupati and Gantavya Bhatt and Aniket Rege and Matthew Wallingford and Aditya Sinha
        and Vivek Ramanujan and William Howard-Snyder and Kaifeng Chen and Sham Kakade and Prateek Jain
        and Ali Farhadi},
    year={2024},
    eprint={2205.13147},
    archivePrefix={arXiv},
    primaryClass={cs.LG}
}
"""

    def __init__(self, model: nn.Module, loss: nn.Module, matryoshka_dims: Sequence[int],
                 matryoshka_weights: Sequence[float] | None = None, n_dims_per_step: int = -1) -> None:
        super().__init__(model)
        if not hasattr(loss, "compute_loss_from_embeddings"):
            raise TypeError(
                f"MatryoshkaLoss cannot wrap {type(loss).__name__}: it has no compute_loss_from_embeddings(). "
                "To combine with AdaptiveLayerLoss, wrap the other way round: "
                "AdaptiveLayerLoss(model, MatryoshkaLoss(model, inner_loss, dims))."
            )
        if not matryoshka_dims:
            raise ValueError("You must provide at least one dimension in matryoshka_dims.")
        if any(int(d) <= 0 for d in matryoshka_dims):
            raise ValueError(f"All matryoshka_dims must be positive, got {list(matryoshka_dims)}.")
        if matryoshka_weights is None:
            matryoshka_weights = [1] * len(matryoshka_dims)
        elif len(matryoshka_weights) != len(matryoshka_dims):
            raise ValueError("matryoshka_weights must be the same length as matryoshka_dims.")
        full = model.get_sentence_embedding_dimension() if hasattr(model, "get_sentence_embedding_dimension") else None
        if full is not None:
            if any(d > full for d in matryoshka_dims):
                raise ValueError(f"matryoshka_dims {list(matryoshka_dims)} exceed the model's embedding "
                                 f"dimension {full}.")
            if full not in matryoshka_dims:
                logger.warning("The model's embedding dimension %d is not in matryoshka_dims %s: the full-size "
                               "embedding will not be trained directly.", full, list(matryoshka_dims))
        self.loss = loss
        # largest dimension first, as in sentence-transformers
        pairs = sorted(zip((int(d) for d in matryoshka_dims), matryoshka_weights), key=lambda p: p[0], reverse=True)
        self.matryoshka_dims = tuple(d for d, _ in pairs)
        self.matryoshka_weights = tuple(w for _, w in pairs)
        self.n_dims_per_step = n_dims_per_step

    def _sampled(self) -> list[tuple[int, float]]:
        indices = list(range(len(self.matryoshka_dims)))
        if 0 < self.n_dims_per_step < len(indices):
            indices = sorted(random.sample(indices, self.n_dims_per_step))
        return [(self.matryoshka_dims[i], self.matryoshka_weights[i]) for i in indices]

    def forward(self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None = None) -> Tensor:
        if isinstance(self.loss, CachedEmbeddingLoss):
            # GradCache embeds by itself (mini-batch by mini-batch); the truncations are views of its cache.
            views = [(partial(shrink, dim=dim), weight) for dim, weight in self._sampled()]
            return self.loss(sentence_features, labels, embedding_views=views)
        return self.compute_loss_from_embeddings(self.embed(sentence_features), labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        total: Tensor | float = 0.0
        for dim, weight in self._sampled():
            truncated = [shrink(e, dim) for e in embeddings]
            total = total + weight * self.loss.compute_loss_from_embeddings(truncated, labels)
        return total

    def get_config_dict(self) -> dict[str, Any]:
        return {"loss": type(self.loss).__name__, "matryoshka_dims": list(self.matryoshka_dims),
                "matryoshka_weights": list(self.matryoshka_weights), "n_dims_per_step": self.n_dims_per_step}
