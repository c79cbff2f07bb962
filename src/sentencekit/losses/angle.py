"""AnglELoss: CoSENTLoss with the AnglE angle-difference similarity."""

from __future__ import annotations

from torch import nn

from sentencekit.losses.cosent import CoSENTLoss
from sentencekit.similarity import pairwise_angle_sim


class AnglELoss(CoSENTLoss):
    """(text1, text2) columns with a float score: :class:`CoSENTLoss` with ``pairwise_angle_sim`` (embeddings
    read as complex vectors, real and imaginary halves), which avoids the flat gradients of cosine near +-1.

    >>> import torch
    >>> from sentencekit import SentenceTransformer
    >>> from sentencekit.losses import AnglELoss
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")       # doctest: +SKIP
    >>> loss = AnglELoss(model)                                                     # doctest: +SKIP
    >>> columns = [["How do I get a refund?", "Is it sunny?"], ["Refunds take 5 days.", "Refunds take 5 days."]]
    >>> loss([model.tokenize(texts) for texts in columns], torch.tensor([0.9, 0.1])).backward()  # doctest: +SKIP
    """

    citation = """
@misc{li2023angleoptimized,
    title={AnglE-optimized Text Embeddings},
    author={Xianming Li and Jing Li},
    year={2023},
    eprint={2309.12871},
    archivePrefix={arXiv},
    primaryClass={cs.CL}
}
"""

    def __init__(self, model: nn.Module, scale: float = 20.0) -> None:
        super().__init__(model, scale=scale, similarity_fct=pairwise_angle_sim)
