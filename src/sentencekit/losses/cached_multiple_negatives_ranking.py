"""CachedMultipleNegativesRankingLoss: MultipleNegativesRankingLoss with GradCache (large batches, small memory)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sentencekit.losses._base import check_columns, function_name
from sentencekit.losses._gradcache import CachedEmbeddingLoss
from sentencekit.similarity import cos_sim


class CachedMultipleNegativesRankingLoss(CachedEmbeddingLoss):
    """MultipleNegativesRankingLoss (same columns, same value and gradients) computed with GradCache: texts
    are embedded ``mini_batch_size`` at a time, so the batch (hence the number of in-batch negatives) can be
    far larger than what fits in memory at once. Dropout is replayed exactly (RNG states are saved).

    >>> from sentencekit import SentenceTransformer
    >>> from sentencekit.losses import CachedMultipleNegativesRankingLoss
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")       # doctest: +SKIP
    >>> loss = CachedMultipleNegativesRankingLoss(model, mini_batch_size=1)         # doctest: +SKIP
    >>> columns = [["How do I get a refund?", "Is it sunny?"], ["Refunds take 5 days.", "Paris is mild today."]]
    >>> loss([model.tokenize(texts) for texts in columns], None).backward()         # doctest: +SKIP
    """

    citation = """
@misc{gao2021scaling,
    title={Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup},
    author={Luyu Gao and Yunyi Zhang and Jiawei Han and Jamie Callan},
    year={2021},
    eprint={2101.06983},
    archivePrefix={arXiv},
    primaryClass={cs.LG}
}
"""

    def __init__(self, model: nn.Module, scale: float = 20.0,
                 similarity_fct: Callable[[Tensor, Tensor], Tensor] = cos_sim, mini_batch_size: int = 32,
                 show_progress_bar: bool = False) -> None:
        super().__init__(model, mini_batch_size=mini_batch_size, show_progress_bar=show_progress_bar)
        self.scale = scale
        self.similarity_fct = similarity_fct

    def calculate_loss(self, embeddings: list[Tensor], labels: Tensor | None = None,
                       with_backward: bool = False) -> Tensor:
        check_columns(self, embeddings, (2, None))
        anchors, candidates = embeddings[0], torch.cat(embeddings[1:])
        batch_size = len(anchors)
        targets = torch.arange(batch_size, device=anchors.device)
        total: Tensor | float = 0.0
        # The score matrix is built mini_batch_size anchors at a time: memory grows with the batch, not its square.
        for begin in range(0, batch_size, self.mini_batch_size):
            end = begin + self.mini_batch_size
            scores = self.similarity_fct(anchors[begin:end], candidates) * self.scale
            part = F.cross_entropy(scores, targets[begin:end], reduction="sum") / batch_size
            if with_backward:
                part.backward()
                part = part.detach()
            total = total + part
        return total

    def get_config_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "similarity_fct": function_name(self.similarity_fct),
                "mini_batch_size": self.mini_batch_size}
