"""Evaluators, as in ``sentence_transformers.evaluation`` (and ``sentence_transformers.cross_encoder.
evaluation``, ``sentence_transformers.sparse_encoder.evaluation``, ``sentence_transformers.multi_vector_encoder.
evaluation``): callables
``evaluator(model, output_path=None, epoch=-1, steps=-1) -> dict[str, float]`` with sentence-transformers'
metric names, ``primary_metric`` and ``greater_is_better``, that append a CSV row to ``output_path`` when
given.

>>> from sentencekit.evaluation import EmbeddingSimilarityEvaluator
>>> evaluator = EmbeddingSimilarityEvaluator(["A cat sits.", "Stocks fell."], ["A cat is sitting.", "I like tea."],
...                                          [1.0, 0.0], name="toy")
>>> evaluator.primary_metric
'toy_spearman_cosine'
"""

from __future__ import annotations

from sentencekit.evaluation.binary_classification import BinaryClassificationEvaluator
from sentencekit.evaluation.cross_encoder_classification import CrossEncoderClassificationEvaluator
from sentencekit.evaluation.cross_encoder_correlation import CrossEncoderCorrelationEvaluator
from sentencekit.evaluation.cross_encoder_reranking import CrossEncoderRerankingEvaluator
from sentencekit.evaluation.embedding_similarity import EmbeddingSimilarityEvaluator
from sentencekit.evaluation.evaluator_base import BaseEvaluator, SentenceEvaluator, SimilarityFunction
from sentencekit.evaluation.information_retrieval import InformationRetrievalEvaluator
from sentencekit.evaluation.mse_evaluator import MSEEvaluator
from sentencekit.evaluation.multivector_distillation import MultiVectorDistillationEvaluator
from sentencekit.evaluation.multivector_evaluation import (
    MultiVectorInformationRetrievalEvaluator,
    MultiVectorRerankingEvaluator,
    MultiVectorTripletEvaluator,
)
from sentencekit.evaluation.multivector_nano_beir import MultiVectorNanoBEIREvaluator
from sentencekit.evaluation.nano_beir import NanoBEIREvaluator
from sentencekit.evaluation.paraphrase_mining import ParaphraseMiningEvaluator
from sentencekit.evaluation.reciprocal_rank_fusion import ReciprocalRankFusionEvaluator
from sentencekit.evaluation.reranking import RerankingEvaluator
from sentencekit.evaluation.sequential import SequentialEvaluator
from sentencekit.evaluation.sparse_evaluation import (
    SparseBinaryClassificationEvaluator,
    SparseEmbeddingSimilarityEvaluator,
    SparseInformationRetrievalEvaluator,
    SparseMSEEvaluator,
    SparseRerankingEvaluator,
    SparseTranslationEvaluator,
    SparseTripletEvaluator,
)
from sentencekit.evaluation.sparse_nano_beir import SparseNanoBEIREvaluator
from sentencekit.evaluation.translation import TranslationEvaluator
from sentencekit.evaluation.triplet_evaluator import TripletEvaluator

__all__ = [
    "SentenceEvaluator",
    "BaseEvaluator",
    "SimilarityFunction",
    "EmbeddingSimilarityEvaluator",
    "InformationRetrievalEvaluator",
    "NanoBEIREvaluator",
    "BinaryClassificationEvaluator",
    "TripletEvaluator",
    "ParaphraseMiningEvaluator",
    "TranslationEvaluator",
    "MSEEvaluator",
    "RerankingEvaluator",
    "SequentialEvaluator",
    "CrossEncoderCorrelationEvaluator",
    "CrossEncoderClassificationEvaluator",
    "CrossEncoderRerankingEvaluator",
    "SparseInformationRetrievalEvaluator",
    "SparseNanoBEIREvaluator",
    "SparseEmbeddingSimilarityEvaluator",
    "SparseRerankingEvaluator",
    "SparseTripletEvaluator",
    "SparseBinaryClassificationEvaluator",
    "SparseMSEEvaluator",
    "SparseTranslationEvaluator",
    "ReciprocalRankFusionEvaluator",
    "MultiVectorInformationRetrievalEvaluator",
    "MultiVectorNanoBEIREvaluator",
    "MultiVectorTripletEvaluator",
    "MultiVectorRerankingEvaluator",
    "MultiVectorDistillationEvaluator",
]
