"""Sparse-encoder losses, as ``sentence_transformers.sparse_encoder.losses`` (6.2).

Train SPLADE models with :class:`SpladeLoss` (a ranking loss plus FLOPS regularisation; :class:`CachedSpladeLoss`
for batches larger than memory) and CSR models (a ``SparseAutoEncoder`` on a dense embedder) with
:class:`CSRLoss`. The ranking losses inside them are the
dense losses' math (one home: :mod:`sentencekit.losses`) with sparse defaults; they raise when trained
alone, except :class:`SparseMSELoss`.

>>> from sentencekit.losses.sparse import SparseMultipleNegativesRankingLoss, SpladeLoss
>>> SpladeLoss.__name__
'SpladeLoss'
"""

from sentencekit.losses.sparse.cached_splade_loss import CachedSpladeLoss
from sentencekit.losses.sparse.csr_loss import CSRLoss, CSRReconstructionLoss
from sentencekit.losses.sparse.flops import FlopsLoss, flops
from sentencekit.losses.sparse.sparse_distillation import SparseDistillKLDivLoss, SparseMarginMSELoss, SparseMSELoss
from sentencekit.losses.sparse.sparse_mnrl import SparseMultipleNegativesRankingLoss
from sentencekit.losses.sparse.sparse_pair_losses import SparseAnglELoss, SparseCoSENTLoss, SparseCosineSimilarityLoss
from sentencekit.losses.sparse.sparse_triplet import SparseTripletLoss
from sentencekit.losses.sparse.splade_loss import SpladeLoss
from sentencekit.losses.triplet import TripletDistanceMetric

__all__ = [
    "CSRLoss",
    "CachedSpladeLoss",
    "CSRReconstructionLoss",
    "FlopsLoss",
    "SparseAnglELoss",
    "SparseCoSENTLoss",
    "SparseCosineSimilarityLoss",
    "SparseDistillKLDivLoss",
    "SparseMSELoss",
    "SparseMarginMSELoss",
    "SparseMultipleNegativesRankingLoss",
    "SparseTripletLoss",
    "SpladeLoss",
    "TripletDistanceMetric",
    "flops",
]
