"""``MultiVectorNanoBEIREvaluator``: :class:`~sentencekit.evaluation.NanoBEIREvaluator` for multi-vector (ColBERT)
models, as sentence-transformers 6.2's (``sentence_transformers.multi_vector_encoder.evaluation``)."""

from __future__ import annotations

from typing import Any

from sentencekit.evaluation.multivector_evaluation import (
    MultiVectorInformationRetrievalEvaluator,
    check_no_truncate_dim,
)
from sentencekit.evaluation.nano_beir import NanoBEIREvaluator


class MultiVectorNanoBEIREvaluator(NanoBEIREvaluator):
    """NanoBEIR with one :class:`~sentencekit.evaluation.MultiVectorInformationRetrievalEvaluator` per subset:
    MaxSim retrieval (the model's similarity, ``maxsim`` or ``meanmaxsim``), ``corpus_chunk_size`` documents
    embedded at a time (5000) and ``chunk_elements`` as MaxSim's element budget; the NanoBEIR evaluator's other
    arguments, metric names (``NanoBEIR_mean_maxsim_ndcg@10`` ...), aggregation and CSV. Raises as
    :class:`~sentencekit.evaluation.NanoBEIREvaluator`, and ``ValueError`` for ``truncate_dim``.

    >>> from sentencekit.evaluation import MultiVectorNanoBEIREvaluator
    >>> evaluator = MultiVectorNanoBEIREvaluator(dataset_names=["scifact", "nfcorpus"])   # doctest: +SKIP
    >>> evaluator(colbert_model)[evaluator.primary_metric]                               # doctest: +SKIP
    """

    information_retrieval_class = MultiVectorInformationRetrievalEvaluator

    def __init__(self, *args: Any, corpus_chunk_size: int = 5000, chunk_elements: int | None = None,
                 **kwargs: Any) -> None:
        check_no_truncate_dim(kwargs.get("truncate_dim"))
        self.corpus_chunk_size, self.chunk_elements = corpus_chunk_size, chunk_elements
        super().__init__(*args, **kwargs)

    def _retrieval_options(self) -> dict[str, Any]:
        return {"corpus_chunk_size": self.corpus_chunk_size, "chunk_elements": self.chunk_elements}


__all__ = ["MultiVectorNanoBEIREvaluator"]
