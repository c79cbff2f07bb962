"""CoSENTLoss: a pairwise ranking loss on the similarities of scored pairs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from sentencekit.losses._base import EmbeddingLoss, check_columns, function_name, labels_on
from sentencekit.similarity import pairwise_cos_sim


class CoSENTLoss(EmbeddingLoss):
    """(text1, text2) columns with a float score. Any pair with a higher gold score must get a higher
    similarity than any pair with a lower one:
    ``log(1 + sum over (i, j) with score_i < score_j of exp(scale * (sim_i - sim_j)))``.
    The trainer's default loss in sentence-transformers.

    >>> import torch
    >>> from sentencekit import SentenceTransformer
    >>> from sentencekit.losses import CoSENTLoss
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")       # doctest: +SKIP
    >>> loss = CoSENTLoss(model)                                                    # doctest: +SKIP
    >>> columns = [["How do I get a refund?", "Is it sunny?"], ["Refunds take 5 days.", "Refunds take 5 days."]]
    >>> loss([model.tokenize(texts) for texts in columns], torch.tensor([0.9, 0.1])).backward()  # doctest: +SKIP
    """

    citation = """
@online{kexuefm-8847,
    title={CoSENT: A more efficient sentence vector scheme than Sentence-BERT},
    author={Su Jianlin},
    year={2022},
    month={Jan},
    url={https://kexue.fm/archives/8847},
}
"""

    def __init__(self, model: nn.Module, scale: float = 20.0,
                 similarity_fct: Callable[[Tensor, Tensor], Tensor] = pairwise_cos_sim) -> None:
        super().__init__(model)
        self.scale = scale
        self.similarity_fct = similarity_fct

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        check_columns(self, embeddings, 2)
        scores = self.similarity_fct(embeddings[0], embeddings[1]) * self.scale
        labels = labels_on(labels, scores, self, scores.dtype).view(-1)
        differences = scores[:, None] - scores[None, :]  # [i, j] = s_i - s_j
        wrong_order = (labels[:, None] < labels[None, :]).to(scores.dtype)  # pairs where s_i should be < s_j
        differences = differences - (1 - wrong_order) * 1e12  # the other pairs vanish in the logsumexp
        # the leading 0 is the "1 +" inside the log
        differences = torch.cat((torch.zeros(1, device=scores.device, dtype=scores.dtype), differences.view(-1)))
        return torch.logsumexp(differences, dim=0)

    def get_config_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "similarity_fct": function_name(self.similarity_fct)}
