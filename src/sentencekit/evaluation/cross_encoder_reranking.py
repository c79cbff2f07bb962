"""``CrossEncoderRerankingEvaluator``: rerank each query's candidate documents with a cross-encoder and
report MAP, MRR@k and NDCG@k, and, for given document lists, the same metrics of the given order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from sentencekit.evaluation.evaluator_base import SentenceEvaluator, csv_name
from sentencekit.evaluation.metrics import mean_reranking_metrics
from sentencekit.evaluation.reranking import Sample, as_text_list


class CrossEncoderRerankingEvaluator(SentenceEvaluator):
    """Rerank samples ``{"query", "positive": [...], "negative": [...]}`` or ``{"query", "positive":
    [...], "documents": [...]}`` (e.g. a first-stage retriever's list, best first) with
    ``model.predict`` and report ``map``, ``mrr@{at_k}`` and ``ndcg@{at_k}`` (primary).

    With ``documents``, ``base_map``, ``base_mrr@{at_k}`` and ``base_ndcg@{at_k}`` measure the given order
    (positives missing from ``documents`` count as ranked last). ``always_rerank_positives=True`` adds
    every positive to the reranked candidates; ``False`` reranks ``documents`` only and counts the
    positives missing from them as ranked last (the realistic setting). A sample whose candidates hold
    no positive scores 0.

    >>> from sentencekit import CrossEncoder
    >>> from sentencekit.evaluation import CrossEncoderRerankingEvaluator
    >>> evaluator = CrossEncoderRerankingEvaluator([{
    ...     "query": "How do I get a refund?", "positive": ["Refunds take 5 days."],
    ...     "documents": ["Paris is mild today.", "Refunds take 5 days."]}], name="toy")
    >>> evaluator(CrossEncoder("path/to/reranker"))                                   # doctest: +SKIP
    {'toy_map': 1.0, 'toy_mrr@10': 1.0, 'toy_ndcg@10': 1.0, 'toy_base_map': 0.5, 'toy_base_mrr@10': 0.5,
     'toy_base_ndcg@10': 0.63}
    """

    def __init__(
        self,
        samples: list[Sample] | dict[Any, Sample],
        at_k: int = 10,
        always_rerank_positives: bool = True,
        name: str = "",
        batch_size: int = 64,
        show_progress_bar: bool = False,
        write_csv: bool = True,
        mrr_at_k: int | None = None,
    ) -> None:
        super().__init__()
        self.samples = list(samples.values()) if isinstance(samples, dict) else list(samples)
        for sample in self.samples:
            if "query" not in sample or "positive" not in sample:
                raise ValueError("CrossEncoderRerankingEvaluator samples need a 'query' and a 'positive' key.")
            if ("negative" in sample) == ("documents" in sample):
                raise ValueError("CrossEncoderRerankingEvaluator samples need exactly one of 'negative' and "
                                 "'documents'.")
        self.at_k = mrr_at_k if mrr_at_k is not None else at_k  # mrr_at_k: the deprecated name
        self.always_rerank_positives = always_rerank_positives
        self._run_options(name, batch_size, show_progress_bar, write_csv,
                          csv_name("CrossEncoderRerankingEvaluator", name, f"_results_@{self.at_k}.csv"))
        self.csv_headers = ["epoch", "steps", "MAP", f"MRR@{self.at_k}", f"NDCG@{self.at_k}"]
        self.primary_metric = f"ndcg@{self.at_k}"

    @staticmethod
    def _base(positives: list[str], documents: list[str]) -> tuple[list[int], np.ndarray]:
        """The given order as scores; positives missing from ``documents`` are appended last."""
        relevance = [int(doc in positives) for doc in documents]
        if any(relevance):  # as sentence-transformers: no positive in the list at all scores 0
            relevance += [1] * sum(positive not in documents for positive in positives)
        return relevance, np.arange(len(relevance), 0, -1, dtype=np.float64)

    def _candidates(self, sample: Sample) -> tuple[list[str], list[int], int]:
        """Texts to rerank, their relevance, and the number of positives left out (ranked last)."""
        positives = as_text_list(sample["positive"])
        if "documents" not in sample:
            negatives = as_text_list(sample["negative"])
            return positives + negatives, [1] * len(positives) + [0] * len(negatives), 0
        documents = as_text_list(sample["documents"])
        if self.always_rerank_positives:
            docs = positives + [doc for doc in documents if doc not in positives]
            return docs, [1] * len(positives) + [0] * (len(docs) - len(positives)), 0
        missing = sum(positive not in documents for positive in positives)
        return documents, [int(doc in positives) for doc in documents], missing

    def _reranked(self, model: Any) -> Iterator[tuple[list[int], np.ndarray]]:
        for sample in self.samples:
            docs, relevance, missing = self._candidates(sample)
            if not any(relevance):  # nothing relevant to rerank: scores 0, as in sentence-transformers
                yield relevance, np.zeros(len(relevance))
                continue
            scores = np.asarray(model.predict([(sample["query"], doc) for doc in docs], batch_size=self.batch_size,
                                              show_progress_bar=False, convert_to_numpy=True), dtype=np.float64)
            scores = scores.reshape(len(docs))
            # left-out positives rank below every reranked document
            yield relevance + [1] * missing, np.r_[scores, np.full(missing, scores.min() - 1.0)]

    def compute_metrics(self, model: Any) -> dict[str, float]:
        metrics = mean_reranking_metrics(self._reranked(model), self.at_k)
        with_documents = [s for s in self.samples if "documents" in s]
        if with_documents:  # the given order, over the samples that give one
            base = (self._base(as_text_list(s["positive"]), as_text_list(s["documents"])) for s in with_documents)
            metrics.update(mean_reranking_metrics(base, self.at_k, prefix="base_"))
        return metrics

    def csv_values(self, metrics: dict[str, float]) -> list[float]:
        return [metrics["map"], metrics[f"mrr@{self.at_k}"], metrics[f"ndcg@{self.at_k}"]]

    def get_config_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {"at_k": self.at_k}
        if any("documents" in s for s in self.samples):
            config["always_rerank_positives"] = self.always_rerank_positives
        return config
