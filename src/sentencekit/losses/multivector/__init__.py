"""Multi-vector (ColBERT) losses, as ``sentence_transformers.multi_vector_encoder.losses`` (6.2).

They take a :class:`~sentencekit.MultiVectorEncoder` and are called as ``loss(sentence_features, labels)`` with one
tokenized column per input (column 0 the queries, the others documents; ``MultiVectorEncoderDataCollator``
records each column's task). The model's per-token embeddings and scoring masks are scored by a training scorer
(:mod:`sentencekit.late_interaction_scoring`: MaxSim by default; :mod:`sentencekit.late_interaction_xtr` for XTR).

>>> from sentencekit.losses.multivector import MultiVectorMultipleNegativesRankingLoss
>>> MultiVectorMultipleNegativesRankingLoss.__name__
'MultiVectorMultipleNegativesRankingLoss'
"""

from sentencekit.losses.multivector.cached_multivector_ranking import CachedMultiVectorMultipleNegativesRankingLoss
from sentencekit.losses.multivector.multivector_kd_losses import (
    MultiVectorDistillKLDivLoss,
    MultiVectorMarginMSELoss,
)
from sentencekit.losses.multivector.multivector_ranking import MultiVectorMultipleNegativesRankingLoss

__all__ = [
    "MultiVectorMultipleNegativesRankingLoss",
    "CachedMultiVectorMultipleNegativesRankingLoss",
    "MultiVectorDistillKLDivLoss",
    "MultiVectorMarginMSELoss",
]
