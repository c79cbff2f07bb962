"""Scored-pair losses on sparse embeddings, as sentence-transformers 6.2's ``SparseCoSENTLoss``,
``SparseAnglELoss`` and ``SparseCosineSimilarityLoss``. The math is the dense losses'
(:mod:`sentencekit.losses.cosent`, :mod:`~sentencekit.losses.angle`, :mod:`~sentencekit.losses.cosine_similarity`)."""

from __future__ import annotations

from sentencekit.losses.angle import AnglELoss
from sentencekit.losses.cosent import CoSENTLoss
from sentencekit.losses.cosine_similarity import CosineSimilarityLoss
from sentencekit.losses.sparse._inner_loss import InnerLossOnly


class SparseCoSENTLoss(InnerLossOnly, CoSENTLoss):
    """(text1, text2) columns with a float score: ``log(1 + sum_{s_i < s_j} exp(scale * (sim_i - sim_j)))``
    (Su 2022; ``scale=20``, ``pairwise_cos_sim``). Use it inside ``SpladeLoss`` / ``CSRLoss``: ``forward``
    raises ``AttributeError``."""


class SparseAnglELoss(InnerLossOnly, AnglELoss):
    """CoSENT with the AnglE angle similarity (Li & Li 2023; ``scale=20``). Use it inside ``SpladeLoss`` /
    ``CSRLoss``: ``forward`` raises ``AttributeError``."""


class SparseCosineSimilarityLoss(InnerLossOnly, CosineSimilarityLoss):
    """(text1, text2) columns with a float score: ``loss_fct(cos_score_transformation(cos(u, v)), score)``
    (MSE by default). Use it inside ``SpladeLoss`` / ``CSRLoss``: ``forward`` raises ``AttributeError``."""
