"""``ReciprocalRankFusionEvaluator``: how a dense and a sparse retriever's rankings, and their reciprocal
rank fusion (Cormack et al., SIGIR 2009), score against the relevant documents. Arguments, metric names
and output files as sentence-transformers 6.2 (``sentence_transformers.sparse_encoder.evaluation``)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from sentencekit.evaluation.evaluator_base import SentenceEvaluator, csv_name
from sentencekit.evaluation.metrics import mean_reranking_metrics

logger = logging.getLogger(__name__)

Sample = dict[str, Any]


def rrf_fuse(first: Sequence[Any], second: Sequence[Any], rrf_k: int = 60) -> list[Any]:
    """Documents of two rankings (best first) ordered by ``1 / (rrf_k + rank_1) + 1 / (rrf_k + rank_2)``
    (0-based ranks; a document missing from a ranking gets that ranking's length). Ties keep first-seen
    order (first ranking, then the second's new documents).

    >>> rrf_fuse(["a", "b", "c"], ["c", "a"])
    ['a', 'c', 'b']
    """
    rank_1 = {doc: i for i, doc in enumerate(first)}
    rank_2 = {doc: i for i, doc in enumerate(second)}
    docs = list(dict.fromkeys([*first, *second]))
    score = {doc: 1 / (rrf_k + rank_1.get(doc, len(first))) + 1 / (rrf_k + rank_2.get(doc, len(second)))
             for doc in docs}
    return sorted(docs, key=lambda doc: -score[doc])


def _as_list(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else list(value)


class ReciprocalRankFusionEvaluator(SentenceEvaluator):
    """Evaluate two precomputed rankings per query and their RRF fusion; no model is run.

    ``dense_samples`` / ``sparse_samples``: aligned lists of ``{"query_id", "query", "positive": [...],
    "documents": [ranked documents]}`` (the same ``query_id`` at each index; the relevant documents are
    the dense sample's ``positive``). Each ranking is scored as a list whose relevant documents missing from
    it are appended at the end (so they count against NDCG and MAP). Metrics: ``dense_map``,
    ``dense_mrr@{at_k}``, ``dense_ndcg@{at_k}``, the ``sparse_`` three, and the fusion's ``map``,
    ``mrr@{at_k}``, ``ndcg@{at_k}`` (primary). ``write_predictions`` writes the fused rankings as JSON lines
    next to the CSV. Call it as sentence-transformers does, ``evaluator(output_path=None, epoch=-1,
    steps=-1)``; a model passed first (as trainers do) is ignored. Raises ``ValueError`` for lists of
    different lengths, a missing ``query_id`` or mismatched ids.

    >>> evaluator = ReciprocalRankFusionEvaluator(
    ...     [{"query_id": 1, "query": "q", "positive": ["b"], "documents": ["a", "b"]}],
    ...     [{"query_id": 1, "query": "q", "positive": ["b"], "documents": ["b", "c"]}], write_csv=False)
    >>> {k: round(v, 3) for k, v in evaluator().items()}["mrr@10"]
    1.0
    """

    def __init__(
        self,
        dense_samples: list[Sample],
        sparse_samples: list[Sample],
        at_k: int = 10,
        rrf_k: int = 60,
        name: str = "",
        batch_size: int = 32,
        show_progress_bar: bool = False,
        write_csv: bool = True,
        write_predictions: bool = False,
    ) -> None:
        super().__init__()
        if len(dense_samples) != len(sparse_samples):
            raise ValueError(f"Dense samples ({len(dense_samples)}) and sparse samples ({len(sparse_samples)}) "
                             "must have the same length.")
        for i, (dense, sparse) in enumerate(zip(dense_samples, sparse_samples)):
            if "query_id" not in dense or "query_id" not in sparse:
                raise ValueError(f"Sample at index {i} has no 'query_id'.")
            if dense["query_id"] != sparse["query_id"]:
                raise ValueError(f"Query id mismatch at index {i}: {dense['query_id']!r} != {sparse['query_id']!r}")
        self.dense_samples, self.sparse_samples = list(dense_samples), list(sparse_samples)
        self.at_k, self.rrf_k = at_k, rrf_k
        self.write_predictions = write_predictions
        self._run_options(name, batch_size, show_progress_bar, write_csv,
                          csv_name("ReciprocalRankFusion_evaluation", name))
        self.predictions_file = csv_name("ReciprocalRankFusion_evaluation", name, "_predictions.jsonl")
        k = at_k
        self.csv_headers = ["epoch", "steps", "Dense_MAP", f"Dense_MRR@{k}", f"Dense_NDCG@{k}", "Sparse_MAP",
                            f"Sparse_MRR@{k}", f"Sparse_NDCG@{k}", "Fusion_MAP", f"Fusion_MRR@{k}", f"Fusion_NDCG@{k}"]
        self.primary_metric = f"ndcg@{at_k}"
        self._fused: list[Sample] = []

    def __call__(self, model: Any = None, output_path: str | None = None, epoch: int = -1, steps: int = -1
                 ) -> dict[str, float]:
        """Score the rankings (no model runs: ``model`` is accepted so trainers can call it like any evaluator)."""
        if isinstance(model, (str, os.PathLike)) and output_path is None:
            # sentence-transformers' own signature has no model: evaluator("out/path") names the output folder
            model, output_path = None, os.fspath(model)
        metrics = super().__call__(None, output_path, epoch, steps)
        if output_path is not None and self.write_predictions and self._fused:
            os.makedirs(output_path, exist_ok=True)
            with open(os.path.join(output_path, self.predictions_file), "w", encoding="utf-8") as handle:
                for row in self._fused:
                    handle.write(json.dumps(row) + "\n")
        return metrics

    def _lists(self, which: str) -> Iterator[tuple[list[int], list[float]]]:
        """``(relevance, scores)`` of each query's ranking (``which``: dense, sparse or fusion)."""
        self._fused = []
        for dense, sparse in zip(self.dense_samples, self.sparse_samples):
            positives = _as_list(dense["positive"])
            if which == "fusion":
                ranking = rrf_fuse(list(dense["documents"]), list(sparse["documents"]), self.rrf_k)
                if self.write_predictions:
                    self._fused.append({"query_id": dense["query_id"], "query": dense.get("query"),
                                        "positive": positives, "documents": ranking})
            else:
                ranking = list((dense if which == "dense" else sparse)["documents"])
            relevance = [int(doc in positives) for doc in ranking]
            if any(relevance):  # relevant documents the retriever missed rank last
                relevance += [1] * (len(positives) - sum(relevance))
            yield relevance, [float(len(relevance) - i) for i in range(len(relevance))]

    def compute_metrics(self, model: Any = None) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for which, prefix in (("dense", "dense_"), ("sparse", "sparse_"), ("fusion", "")):
            metrics.update(mean_reranking_metrics(self._lists(which), self.at_k, prefix))
        return metrics

    def get_config_dict(self) -> dict[str, Any]:
        return {"at_k": self.at_k, "rrf_k": self.rrf_k, "write_predictions": self.write_predictions}


__all__ = ["ReciprocalRankFusionEvaluator", "rrf_fuse"]
