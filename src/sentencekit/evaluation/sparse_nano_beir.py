"""``SparseNanoBEIREvaluator``: :class:`~sentencekit.evaluation.NanoBEIREvaluator` for sparse encoders, as
sentence-transformers 6.2's (``sentence_transformers.sparse_encoder.evaluation.SparseNanoBEIREvaluator``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from sentencekit.evaluation.evaluator_base import SimilarityName
from sentencekit.evaluation.information_retrieval import ScoreFunction
from sentencekit.evaluation.nano_beir import NanoBEIREvaluator
from sentencekit.evaluation.sparse_evaluation import SparseInformationRetrievalEvaluator


class SparseNanoBEIREvaluator(NanoBEIREvaluator):
    """NanoBEIR with one :class:`~sentencekit.evaluation.SparseInformationRetrievalEvaluator` per subset (score
    function: the model's, dot product by default; ``max_active_dims`` caps the embeddings and is appended to
    the names: ``NanoSciFact_64``, ``NanoBEIR_mean_64``). Besides the aggregated retrieval metrics it reports
    the sparsity over all subsets' texts: ``query_active_dims`` / ``corpus_active_dims`` (mean non-zero weights
    per query / document, over the texts of every subset: a mean weighted by subset size),
    ``query_sparsity_ratio`` / ``corpus_sparsity_ratio`` (``1 - active_dims / dim``) and ``avg_flops`` (the
    dot product of the mean query and the mean document count vectors, counted over all subsets), under
    ``NanoBEIR_{aggregate_key}[_{max_active_dims}]_``; the CSV row ends with them. No ``truncate_dim``.

    Raises as :class:`~sentencekit.evaluation.NanoBEIREvaluator`, and ``ValueError`` for a ``max_active_dims``
    that is not a positive integer.

    >>> from sentencekit.evaluation import SparseNanoBEIREvaluator
    >>> evaluator = SparseNanoBEIREvaluator(dataset_names=["scifact", "nfcorpus"])   # doctest: +SKIP
    >>> evaluator(sparse_model)["NanoBEIR_mean_avg_flops"]                           # doctest: +SKIP
    """

    information_retrieval_class = SparseInformationRetrievalEvaluator

    def __init__(
        self,
        dataset_names: Sequence[str] | None = None,
        dataset_id: str = "sentence-transformers/NanoBEIR-en",
        mrr_at_k: Sequence[int] = (10,),
        ndcg_at_k: Sequence[int] = (10,),
        accuracy_at_k: Sequence[int] = (1, 3, 5, 10),
        precision_recall_at_k: Sequence[int] = (1, 3, 5, 10),
        map_at_k: Sequence[int] = (100,),
        show_progress_bar: bool = False,
        batch_size: int = 32,
        write_csv: bool = True,
        max_active_dims: int | None = None,
        score_functions: dict[str, ScoreFunction] | None = None,
        main_score_function: SimilarityName | None = None,
        aggregate_fn: Callable[[list[float]], float] = np.mean,
        aggregate_key: str = "mean",
        query_prompts: str | dict[str, str] | None = None,
        corpus_prompts: str | dict[str, str] | None = None,
        write_predictions: bool = False,
    ) -> None:
        from sentencekit.pipeline.sparse_output import check_max_active_dims

        self.max_active_dims = check_max_active_dims(max_active_dims)
        super().__init__(dataset_names=dataset_names, dataset_id=dataset_id, mrr_at_k=mrr_at_k, ndcg_at_k=ndcg_at_k,
                         accuracy_at_k=accuracy_at_k, precision_recall_at_k=precision_recall_at_k, map_at_k=map_at_k,
                         show_progress_bar=show_progress_bar, batch_size=batch_size, write_csv=write_csv,
                         score_functions=score_functions, main_score_function=main_score_function,
                         aggregate_fn=aggregate_fn, aggregate_key=aggregate_key, query_prompts=query_prompts,
                         corpus_prompts=corpus_prompts, write_predictions=write_predictions)

    def _suffixed(self, name: str) -> str:
        return f"{name}_{self.max_active_dims}" if self.max_active_dims is not None else name

    def _retrieval_options(self) -> dict[str, Any]:
        return {"max_active_dims": self.max_active_dims}

    def aggregate_extra(self, collected: dict[str, list[float]]) -> dict[str, float]:
        """The sparsity over every subset's texts (see the class), from the subsets' last statistics."""
        metrics: dict[str, float] = {}
        means = {}
        for role in ("query", "corpus"):
            stats = [evaluator.last_stats[role] for evaluator in self.evaluators
                     if evaluator.last_stats and role in evaluator.last_stats]
            texts = sum(rows for rows, _, _ in stats)
            active = sum(nonzero for _, nonzero, _ in stats) / texts if texts else 0.0
            dim = stats[0][2].shape[0] if stats else 0
            metrics[f"{role}_active_dims"] = float(active)
            metrics[f"{role}_sparsity_ratio"] = float(1.0 - active / dim) if dim else 1.0
            means[role] = sum(counts for _, _, counts in stats) / texts if texts else None
        query, corpus = means["query"], means["corpus"]
        metrics["avg_flops"] = float(torch.dot(query, corpus)) if query is not None and corpus is not None else 0.0
        return metrics

    def get_config_dict(self) -> dict[str, Any]:
        config = super().get_config_dict()
        if self.max_active_dims is not None:
            config["max_active_dims"] = self.max_active_dims
        return config


__all__ = ["SparseNanoBEIREvaluator"]
