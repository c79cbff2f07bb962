"""Training losses, with sentence-transformers' names, arguments and defaults.

Bi-encoder losses take a ``SentenceTransformer`` and are called as ``loss(sentence_features, labels)``:
one tokenized features dict per input column, labels a tensor (or None). Embedding-based losses also offer
``compute_loss_from_embeddings(embeddings, labels)``, which the wrappers ``MatryoshkaLoss`` and
``AdaptiveLayerLoss`` use. Every loss has ``get_config_dict()`` (for the model card) and ``citation``.

Cross-encoder losses live in :mod:`sentencekit.losses.cross_encoder`, sparse-encoder (SPLADE, CSR) losses in
:mod:`sentencekit.losses.sparse`, multi-vector (ColBERT) losses in :mod:`sentencekit.losses.multivector`.

>>> from sentencekit.losses import CoSENTLoss, MatryoshkaLoss, MultipleNegativesRankingLoss
>>> MultipleNegativesRankingLoss.__name__
'MultipleNegativesRankingLoss'
"""

from sentencekit.losses import cross_encoder, multivector, sparse
from sentencekit.losses.adaptive_layer import AdaptiveLayerLoss
from sentencekit.losses.angle import AnglELoss
from sentencekit.losses.batch_all_triplet import BatchAllTripletLoss
from sentencekit.losses.batch_hard_triplet import BatchHardTripletLoss, BatchHardTripletLossDistanceFunction
from sentencekit.losses.cached_multiple_negatives_ranking import CachedMultipleNegativesRankingLoss
from sentencekit.losses.contrastive import ContrastiveLoss, SiameseDistanceMetric
from sentencekit.losses.cosent import CoSENTLoss
from sentencekit.losses.cosine_similarity import CosineSimilarityLoss
from sentencekit.losses.distill_kl_div import DistillKLDivLoss
from sentencekit.losses.margin_mse import MarginMSELoss
from sentencekit.losses.matryoshka import MatryoshkaLoss
from sentencekit.losses.mse import MSELoss
from sentencekit.losses.multiple_negatives_ranking import MultipleNegativesRankingLoss
from sentencekit.losses.multiple_negatives_symmetric_ranking import MultipleNegativesSymmetricRankingLoss
from sentencekit.losses.online_contrastive import OnlineContrastiveLoss
from sentencekit.losses.softmax import SoftmaxLoss
from sentencekit.losses.triplet import TripletDistanceMetric, TripletLoss

__all__ = [
    "AdaptiveLayerLoss",
    "AnglELoss",
    "BatchAllTripletLoss",
    "BatchHardTripletLoss",
    "BatchHardTripletLossDistanceFunction",
    "CachedMultipleNegativesRankingLoss",
    "CoSENTLoss",
    "ContrastiveLoss",
    "CosineSimilarityLoss",
    "DistillKLDivLoss",
    "MSELoss",
    "MarginMSELoss",
    "MatryoshkaLoss",
    "MultipleNegativesRankingLoss",
    "MultipleNegativesSymmetricRankingLoss",
    "OnlineContrastiveLoss",
    "SiameseDistanceMetric",
    "SoftmaxLoss",
    "TripletDistanceMetric",
    "TripletLoss",
    "cross_encoder",
    "multivector",
    "sparse",
]
