"""``RerankingEvaluator``: rank each query's candidate documents (positives and negatives) by embedding
similarity and report MAP, MRR@k and NDCG@k."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from sentencekit.evaluation.evaluator_base import SentenceEvaluator, csv_name
from sentencekit.evaluation.metrics import mean_reranking_metrics
from sentencekit.similarity import cos_sim

Sample = dict[str, Any]


def as_text_list(value: str | list[str] | None) -> list[str]:
    """A single text as a one-element list (``None`` as empty)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _rows(embeddings: Tensor, start: int, count: int) -> Tensor:
    """Rows ``start:start + count`` (``index_select``: sparse COO embeddings cannot be sliced)."""
    return embeddings.index_select(0, torch.arange(start, start + count, device=embeddings.device))


class RerankingEvaluator(SentenceEvaluator):
    """Score ``{"query", "positive": [...], "negative": [...]}`` samples: the query is embedded with
    ``encode_query``, the candidates with ``encode_document``, and ranked by ``similarity_fct`` (cosine
    by default). Samples without a positive or without a negative are skipped.

    Metrics: ``map`` (average precision over all candidates), ``mrr@{at_k}``, ``ndcg@{at_k}`` (primary).
    ``use_batched_encoding=False`` embeds sample by sample instead of all texts at once.

    >>> from sentencekit.evaluation import RerankingEvaluator
    >>> evaluator = RerankingEvaluator([{"query": "How do I get a refund?",
    ...                                  "positive": ["Refunds take 5 days."],
    ...                                  "negative": ["Paris is mild today.", "Cats sleep a lot."]}], name="toy")
    >>> evaluator(model)                                          # doctest: +SKIP
    {'toy_map': 1.0, 'toy_mrr@10': 1.0, 'toy_ndcg@10': 1.0}
    """

    def __init__(
        self,
        samples: list[Sample] | dict[Any, Sample],
        at_k: int = 10,
        name: str = "",
        write_csv: bool = True,
        similarity_fct: Callable[[Any, Any], Tensor] = cos_sim,
        batch_size: int = 64,
        show_progress_bar: bool = False,
        use_batched_encoding: bool = True,
        truncate_dim: int | None = None,
        mrr_at_k: int | None = None,
    ) -> None:
        super().__init__()
        samples = list(samples.values()) if isinstance(samples, dict) else list(samples)
        self.samples = [{"query": s["query"], "positive": as_text_list(s.get("positive")),
                         "negative": as_text_list(s.get("negative"))} for s in samples]
        self.samples = [s for s in self.samples if s["positive"] and s["negative"]]
        self.at_k = mrr_at_k if mrr_at_k is not None else at_k  # mrr_at_k: the deprecated name
        self._run_options(name, batch_size, show_progress_bar, write_csv,
                          csv_name("RerankingEvaluator", name, f"_results_@{self.at_k}.csv"))
        self.similarity_fct = similarity_fct
        self.use_batched_encoding = use_batched_encoding
        self.truncate_dim = truncate_dim
        self.csv_headers = ["epoch", "steps", "MAP", f"MRR@{self.at_k}", f"NDCG@{self.at_k}"]
        self.primary_metric = f"ndcg@{self.at_k}"

    # -- what the multi-vector flavour changes ------------------------------------------------------
    def embed_texts(self, model: Any, texts: list[str], kind: str) -> Any:
        """Embeddings of ``texts`` (``kind``: ``"query"`` / ``"document"``): a tensor with one row per text."""
        return self.embed_inputs(model, texts, kind, convert_to_tensor=True)

    @staticmethod
    def take_rows(embeddings: Any, start: int, count: int) -> Any:
        """Embeddings ``start:start + count`` of :meth:`embed_texts`' result."""
        return _rows(embeddings, start, count)

    def scorer(self, model: Any) -> Callable[[Any, Any], Tensor]:
        """What scores one query against its candidates (``[1, candidates]`` or ``[candidates]``)."""
        return self.similarity_fct

    def _scored(self, model: Any) -> Iterator[tuple[list[int], Tensor]]:
        """``(relevance, scores)`` of each sample's candidates (positives first)."""
        if not self.samples:
            return
        similarity = self.scorer(model)
        if self.use_batched_encoding:
            queries = self.embed_texts(model, [s["query"] for s in self.samples], "query")
            documents = self.embed_texts(model, [d for s in self.samples for d in s["positive"] + s["negative"]],
                                         "document")
        start = 0
        for i, sample in enumerate(self.samples):
            candidates = sample["positive"] + sample["negative"]
            if self.use_batched_encoding:
                query, docs = self.take_rows(queries, i, 1), self.take_rows(documents, start, len(candidates))
                start += len(candidates)
            else:
                query = self.embed_texts(model, [sample["query"]], "query")
                docs = self.embed_texts(model, candidates, "document")
            scores = similarity(query, docs)
            relevance = [1] * len(sample["positive"]) + [0] * len(sample["negative"])
            yield relevance, (scores[0] if scores.dim() > 1 else scores).detach().float().cpu()

    def compute_metrics(self, model: Any) -> dict[str, float]:
        return mean_reranking_metrics(self._scored(model), self.at_k)

    def get_config_dict(self) -> dict[str, Any]:
        return {"at_k": self.at_k, **super().get_config_dict()}
