"""``InformationRetrievalEvaluator``: retrieval quality (accuracy, precision, recall, MRR, NDCG and MAP at
several cut-offs) of queries against a corpus, given the relevant documents of each query."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sentencekit.evaluation.evaluator_base import SentenceEvaluator, SimilarityName, all_pairs_fn, csv_name
from sentencekit.evaluation.metrics import (
    hit_at_k,
    map_at_k,
    merge_top_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    rank_relevance,
    recall_at_k,
)
from sentencekit.similarity import SimilarityFunction, check_similarity_fn_name

ScoreFunction = Callable[[Tensor, Tensor], Tensor]

# metric -> (CSV header stem, value for one query: its ranked relevance, number of relevant documents, k),
# in the order sentence-transformers reports them
_METRICS: dict[str, tuple[str, Callable[[np.ndarray, int, int], float]]] = {
    "accuracy": ("Accuracy", lambda ranked, n, k: hit_at_k(ranked, k)),
    "precision": ("Precision", lambda ranked, n, k: precision_at_k(ranked, k)),
    "recall": ("Recall", recall_at_k),
    "ndcg": ("NDCG", ndcg_at_k),
    "mrr": ("MRR", lambda ranked, n, k: mrr_at_k(ranked, k)),
    "map": ("MAP", map_at_k),
}


class InformationRetrievalEvaluator(SentenceEvaluator):
    """Embed queries (``encode_query``) and the corpus (``encode_document``, in chunks of
    ``corpus_chunk_size``), retrieve the best documents of each query for each score function, and
    compare them with ``relevant_docs``.

    Metrics per score function ``fn``: ``{fn}_accuracy@k``, ``{fn}_precision@k``, ``{fn}_recall@k``,
    ``{fn}_ndcg@k``, ``{fn}_mrr@k``, ``{fn}_map@k``; primary ``{fn}_ndcg@{max(ndcg_at_k)}`` of
    ``main_score_function`` (default: the score function with the best NDCG). Relevance is binary;
    NDCG's ideal ranking has ``min(k, number of relevant documents)`` hits; MAP@k divides by
    ``min(k, number of relevant documents)``. Queries without relevant documents are skipped. Tied
    scores rank non-relevant documents first.

    >>> from sentencekit.evaluation import InformationRetrievalEvaluator
    >>> evaluator = InformationRetrievalEvaluator(
    ...     queries={"q1": "How do I get a refund?"},
    ...     corpus={"d1": "Refunds are paid within 5 days.", "d2": "Paris is mild today."},
    ...     relevant_docs={"q1": {"d1"}}, name="toy")
    >>> results = evaluator(model)                                # doctest: +SKIP
    >>> evaluator.primary_metric                                  # doctest: +SKIP
    'toy_cosine_ndcg@10'
    """

    def __init__(
        self,
        queries: dict[Any, str],
        corpus: dict[Any, str],
        relevant_docs: dict[Any, set[Any]],
        corpus_chunk_size: int = 50000,
        mrr_at_k: Sequence[int] = (10,),
        ndcg_at_k: Sequence[int] = (10,),
        accuracy_at_k: Sequence[int] = (1, 3, 5, 10),
        precision_recall_at_k: Sequence[int] = (1, 3, 5, 10),
        map_at_k: Sequence[int] = (100,),
        show_progress_bar: bool = False,
        batch_size: int = 32,
        name: str = "",
        write_csv: bool = True,
        truncate_dim: int | None = None,
        score_functions: dict[str, ScoreFunction] | None = None,
        main_score_function: SimilarityName | None = None,
        query_prompt: str | None = None,
        query_prompt_name: str | None = None,
        corpus_prompt: str | None = None,
        corpus_prompt_name: str | None = None,
    ) -> None:
        super().__init__()
        if corpus_chunk_size <= 0:
            raise ValueError(f"corpus_chunk_size must be positive, got {corpus_chunk_size}")
        self.relevant_docs = {qid: set(docs) for qid, docs in relevant_docs.items()}
        self.queries_ids = [qid for qid in queries if self.relevant_docs.get(qid)]
        self.queries = [queries[qid] for qid in self.queries_ids]
        self.corpus_ids = list(corpus)
        self.corpus = [corpus[cid] for cid in self.corpus_ids]
        self.corpus_chunk_size = corpus_chunk_size
        self.at_k = {"accuracy": list(accuracy_at_k), "precision": list(precision_recall_at_k),
                     "recall": list(precision_recall_at_k), "ndcg": list(ndcg_at_k), "mrr": list(mrr_at_k),
                     "map": list(map_at_k)}
        self._run_options(name, batch_size, show_progress_bar, write_csv,
                          csv_name("Information-Retrieval_evaluation", name))
        self.truncate_dim = truncate_dim
        self.score_functions = dict(score_functions or {})  # empty: the model's, decided at call time
        self.main_score_function = (main_score_function.value if isinstance(main_score_function, SimilarityFunction)
                                    else main_score_function)
        self.query_prompt, self.query_prompt_name = query_prompt, query_prompt_name
        self.corpus_prompt, self.corpus_prompt_name = corpus_prompt, corpus_prompt_name
        first = self.main_score_function or next(iter(self.score_functions), self.default_score_function)
        self.primary_metric = f"{first}_ndcg@{max(ndcg_at_k)}"

    #: the score function named before the first call when none is given (the model's decides at call time)
    default_score_function = "cosine"

    @property
    def score_function_names(self) -> list[str]:
        return sorted(self.score_functions) or [self.default_score_function]

    def model_score_functions(self, model: Any) -> dict[str, ScoreFunction]:
        """The score function used when none was given: the model's similarity (cosine if it has none)."""
        fn = check_similarity_fn_name(getattr(model, "similarity_fn_name", None) or "cosine")
        return {fn: all_pairs_fn(fn)}

    def _metric_keys(self, fn: str) -> list[tuple[str, str]]:
        """``(metric key, CSV header)`` pairs of one score function, in CSV order."""
        keys = [(f"{fn}_accuracy@{k}", f"{fn}-Accuracy@{k}") for k in self.at_k["accuracy"]]
        for k in self.at_k["precision"]:  # precision and recall alternate per k, as in sentence-transformers
            keys += [(f"{fn}_precision@{k}", f"{fn}-Precision@{k}"), (f"{fn}_recall@{k}", f"{fn}-Recall@{k}")]
        for metric in ("mrr", "ndcg", "map"):
            keys += [(f"{fn}_{metric}@{k}", f"{fn}-{_METRICS[metric][0]}@{k}") for k in self.at_k[metric]]
        return keys

    @property
    def csv_headers(self) -> list[str]:  # type: ignore[override]
        return ["epoch", "steps"] + [header for fn in self.score_function_names for _, header in self._metric_keys(fn)]

    def _retrieve(self, model: Any) -> dict[str, list[tuple[list[Any], list[float]]]]:
        """Per score function and query: the best ``max k`` corpus ids and their scores, best first."""
        max_k = max(k for ks in self.at_k.values() for k in ks)
        if not self.queries or not self.corpus:
            return {fn: [([], [])] * len(self.queries) for fn in self.score_functions}
        query_embeddings = self.embed_inputs(model, self.queries, "query", convert_to_tensor=True,
                                             prompt_name=self.query_prompt_name, prompt=self.query_prompt)
        top: dict[str, tuple[Tensor, Tensor]] = {}  # score function -> running (scores, corpus indices)
        for start in range(0, len(self.corpus), self.corpus_chunk_size):
            chunk = self.corpus[start : start + self.corpus_chunk_size]
            chunk_embeddings = self.embed_inputs(model, chunk, "document", convert_to_tensor=True,
                                                 prompt_name=self.corpus_prompt_name, prompt=self.corpus_prompt)
            for fn, score_function in self.score_functions.items():
                scores = score_function(query_embeddings, chunk_embeddings).detach().float().cpu()
                values, ids = torch.topk(scores, min(max_k, scores.shape[1]), dim=1)
                top[fn] = merge_top_k(*top.get(fn, (None, None)), values, ids + start, max_k)
        results: dict[str, list[tuple[list[Any], list[float]]]] = {}
        for fn, (values, ids) in top.items():
            results[fn] = [([self.corpus_ids[i] for i in row_ids], row_scores)
                           for row_ids, row_scores in zip(ids.tolist(), values.tolist())]
        return results

    def compute_metrics(self, model: Any) -> dict[str, float]:
        if not self.score_functions:
            self.score_functions = self.model_score_functions(model)
        metrics: dict[str, float] = {}
        for fn, hits in self._retrieve(model).items():
            totals = {(metric, k): 0.0 for metric in _METRICS for k in self.at_k[metric]}
            for qid, (doc_ids, scores) in zip(self.queries_ids, hits):
                relevant = self.relevant_docs[qid]
                ranked = rank_relevance([doc in relevant for doc in doc_ids], scores)
                for metric, k in totals:
                    totals[metric, k] += _METRICS[metric][1](ranked, len(relevant), k)
            count = max(len(self.queries_ids), 1)
            metrics.update({f"{fn}_{metric}@{k}": total / count for (metric, k), total in totals.items()})
        ndcg_k = max(self.at_k["ndcg"])
        main = self.main_score_function
        if main is None:  # the score function with the best NDCG
            main = max(self.score_function_names, key=lambda fn: metrics[f"{fn}_ndcg@{ndcg_k}"])
        self.primary_metric = f"{main}_ndcg@{ndcg_k}"
        return metrics

    def csv_values(self, metrics: dict[str, float]) -> list[float]:
        return [metrics[key] for fn in self.score_function_names for key, _ in self._metric_keys(fn)]

    def get_config_dict(self) -> dict[str, Any]:
        config = super().get_config_dict()
        for key in ("query_prompt", "query_prompt_name", "corpus_prompt", "corpus_prompt_name"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        return config
