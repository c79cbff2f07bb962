"""``NanoBEIREvaluator``: retrieval quality on NanoBEIR, 13 small BEIR subsets (50 queries, a few thousand
documents each; Thakur et al., "BEIR", NeurIPS 2021 datasets track), aggregated over the subsets. Interface,
metric names and CSV as sentence-transformers 6.2 (``sentence_transformers.evaluation.NanoBEIREvaluator``).

The data is read with :func:`datasets.load_dataset` from ``dataset_id`` (default the Hugging Face Hub
dataset ``sentence-transformers/NanoBEIR-en``; a local folder in the same layout works too): configs
``corpus`` (``_id``, ``text``), ``queries`` (``_id``, ``text``) and ``qrels`` (``query-id``, ``corpus-id``),
each with one split per subset named ``Nano{Name}`` (``NanoSciFact``, ``NanoMSMARCO``, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sentencekit.evaluation.evaluator_base import SentenceEvaluator, SimilarityName
from sentencekit.evaluation.information_retrieval import InformationRetrievalEvaluator, ScoreFunction

logger = logging.getLogger(__name__)

#: dataset name (as ``dataset_names`` takes it, case-insensitive) -> the subset's name in NanoBEIR
DATASET_NAME_TO_HUMAN_READABLE = {
    "climatefever": "ClimateFEVER", "dbpedia": "DBPedia", "fever": "FEVER", "fiqa2018": "FiQA2018",
    "hotpotqa": "HotpotQA", "msmarco": "MSMARCO", "nfcorpus": "NFCorpus", "nq": "NQ",
    "quoraretrieval": "QuoraRetrieval", "scidocs": "SCIDOCS", "arguana": "ArguAna", "scifact": "SciFact",
    "touche2020": "Touche2020",
}


class NanoBEIREvaluator(SentenceEvaluator):
    """One :class:`~sentencekit.evaluation.InformationRetrievalEvaluator` per NanoBEIR subset (named
    ``Nano{Name}``, plus ``_{truncate_dim}``), run in turn; each metric is then aggregated over the subsets
    with ``aggregate_fn`` (default the mean) under ``NanoBEIR_{aggregate_key}`` (plus ``_{truncate_dim}``):
    ``NanoBEIR_mean_cosine_ndcg@10`` and so on. The call returns every subset's metrics and the aggregated
    ones; the primary metric is the aggregated ``{fn}_ndcg@{max(ndcg_at_k)}`` of ``main_score_function``
    (default: the score function with the best aggregated NDCG). Aggregates go to the model card only with
    more than one subset (otherwise they repeat the subset's).

    ``dataset_names``: subsets to use (default all 13; names as :data:`DATASET_NAME_TO_HUMAN_READABLE`'s keys,
    any case). ``query_prompts`` / ``corpus_prompts``: one prompt for every subset, or a dict with one per
    subset. The other arguments are the retrieval evaluator's. The subsets are loaded when the evaluator
    is built (needs ``datasets``; see the module docstring for the layout).

    Raises ``ValueError`` for an empty or unknown ``dataset_names``, a prompt dict missing a subset, a subset
    that cannot be loaded or lacks a column, and ``write_predictions=True`` (not implemented here: the
    retrieval evaluator writes no prediction files).

    >>> from sentencekit.evaluation import NanoBEIREvaluator
    >>> evaluator = NanoBEIREvaluator(dataset_names=["scifact", "nfcorpus"])     # doctest: +SKIP
    >>> results = evaluator(model)                                               # doctest: +SKIP
    >>> evaluator.primary_metric                                                 # doctest: +SKIP
    'NanoBEIR_mean_cosine_ndcg@10'
    """

    information_retrieval_class: type[InformationRetrievalEvaluator] = InformationRetrievalEvaluator

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
        truncate_dim: int | None = None,
        score_functions: dict[str, ScoreFunction] | None = None,
        main_score_function: SimilarityName | None = None,
        aggregate_fn: Callable[[list[float]], float] = np.mean,
        aggregate_key: str = "mean",
        query_prompts: str | dict[str, str] | None = None,
        corpus_prompts: str | dict[str, str] | None = None,
        write_predictions: bool = False,
    ) -> None:
        super().__init__()
        self.dataset_names = list(DATASET_NAME_TO_HUMAN_READABLE) if dataset_names is None else list(dataset_names)
        if not self.dataset_names:
            raise ValueError("dataset_names is empty: give NanoBEIR subset names, or None for all 13.")
        unknown = [name for name in self.dataset_names if name.lower() not in DATASET_NAME_TO_HUMAN_READABLE]
        if unknown:
            raise ValueError(f"{unknown} are not NanoBEIR datasets; valid names: "
                             f"{list(DATASET_NAME_TO_HUMAN_READABLE)}")
        if write_predictions:
            raise ValueError("write_predictions=True is not implemented: the retrieval evaluators write metrics "
                             "(CSV) but no prediction files.")
        self.dataset_id = dataset_id
        self.aggregate_fn, self.aggregate_key = aggregate_fn, aggregate_key
        self.truncate_dim = truncate_dim
        self.query_prompts = self._prompts_per_dataset(query_prompts, "query_prompts")
        self.corpus_prompts = self._prompts_per_dataset(corpus_prompts, "corpus_prompts")
        self.ndcg_at_k = list(ndcg_at_k)
        self.main_score_function = main_score_function
        self._run_options(self._suffixed(f"NanoBEIR_{aggregate_key}"), batch_size, show_progress_bar, write_csv,
                          f"NanoBEIR_evaluation_{aggregate_key}_results.csv")
        retrieval_options = {"mrr_at_k": mrr_at_k, "ndcg_at_k": ndcg_at_k, "accuracy_at_k": accuracy_at_k,
                             "precision_recall_at_k": precision_recall_at_k, "map_at_k": map_at_k,
                             "show_progress_bar": show_progress_bar, "batch_size": batch_size, "write_csv": write_csv,
                             "score_functions": score_functions, "main_score_function": main_score_function,
                             **self._retrieval_options()}
        self.evaluators = [self._load_evaluator(name, retrieval_options) for name in self.dataset_names]
        self.primary_metric = self.evaluators[0]._primary_metric  # "{fn}_ndcg@k": the same key aggregated

    # -- what the sparse flavour changes ------------------------------------------------------------------
    def _suffixed(self, name: str) -> str:
        """An evaluator name with the embedding-size setting appended (``_{truncate_dim}``)."""
        return f"{name}_{self.truncate_dim}" if self.truncate_dim else name

    def _retrieval_options(self) -> dict[str, Any]:
        """The retrieval evaluators' arguments that depend on the flavour."""
        return {"truncate_dim": self.truncate_dim}

    def aggregate_extra(self, collected: dict[str, list[float]]) -> dict[str, float]:
        """Aggregates that replace the plain ``aggregate_fn`` ones (none here)."""
        return {}

    # -- loading --------------------------------------------------------------------------------------------
    def _prompts_per_dataset(self, prompts: str | dict[str, str] | None, argument: str) -> dict[str, str] | None:
        if prompts is None or isinstance(prompts, dict):
            missing = [name for name in self.dataset_names if prompts is not None and name not in prompts]
            if missing:
                raise ValueError(f"{argument} has no prompt for {missing}: give one per dataset, or one string "
                                 "for all.")
            return prompts
        return dict.fromkeys(self.dataset_names, prompts)

    def _load_split(self, config: str, split: str, columns: Sequence[str]) -> Any:
        from datasets import load_dataset

        try:
            data = load_dataset(self.dataset_id, config, split=split)
        except Exception as error:  # datasets raises many kinds (missing repo, config, split, offline cache)
            raise ValueError(f"Could not load config {config!r}, split {split!r} of the NanoBEIR dataset "
                             f"{self.dataset_id!r}: {error}") from error
        missing = set(columns) - set(data.column_names)
        if missing:
            raise ValueError(f"{self.dataset_id!r} config {config!r}, split {split!r} lacks the columns "
                             f"{sorted(missing)} (it has {data.column_names}).")
        return data

    def _load_evaluator(self, dataset_name: str, options: dict[str, Any]) -> InformationRetrievalEvaluator:
        split = f"Nano{DATASET_NAME_TO_HUMAN_READABLE[dataset_name.lower()]}"
        corpus = {row["_id"]: row["text"] for row in self._load_split("corpus", split, ("_id", "text")) if row["text"]}
        queries = {row["_id"]: row["text"] for row in self._load_split("queries", split, ("_id", "text"))
                   if row["text"]}
        relevant: dict[Any, set[Any]] = {}
        for row in self._load_split("qrels", split, ("query-id", "corpus-id")):
            ids = row["corpus-id"]
            relevant.setdefault(row["query-id"], set()).update(ids if isinstance(ids, list) else [ids])
        prompts = {"query_prompt": (self.query_prompts or {}).get(dataset_name),
                   "corpus_prompt": (self.corpus_prompts or {}).get(dataset_name)}
        return self.information_retrieval_class(queries=queries, corpus=corpus, relevant_docs=relevant,
                                                name=self._suffixed(split), **options, **prompts)

    # -- running --------------------------------------------------------------------------------------------
    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        results: dict[str, float] = {}
        collected: dict[str, list[float]] = {}
        for evaluator in self.evaluators:
            logger.info("NanoBEIR: evaluating %s", evaluator.name)
            subset = evaluator(model, output_path, epoch, steps)
            results.update(subset)
            for key, value in subset.items():
                collected.setdefault(key.removeprefix(f"{evaluator.name}_"), []).append(value)
        aggregated = {metric: float(self.aggregate_fn(values)) for metric, values in collected.items()}
        aggregated.update(self.aggregate_extra(collected))
        ndcg = f"ndcg@{max(self.ndcg_at_k)}"
        names = self.evaluators[0].score_function_names
        main = self.evaluators[0].main_score_function or max(names, key=lambda fn: aggregated[f"{fn}_{ndcg}"])
        self.primary_metric = f"{main}_{ndcg}"
        if output_path is not None and self.write_csv:
            self.append_csv_row(output_path, [epoch, steps, *self.csv_values(aggregated)])
        aggregated = self.prefix_name_to_metrics(aggregated, self.name)
        if len(self.evaluators) > 1:
            self.store_metrics_in_model_card_data(model, aggregated, epoch, steps)
        return {**results, **aggregated}

    @property
    def csv_headers(self) -> list[str]:  # type: ignore[override]
        return self.evaluators[0].csv_headers  # the same columns, aggregated

    def csv_values(self, metrics: dict[str, float]) -> list[float]:
        return self.evaluators[0].csv_values(metrics)

    def csv_header_row(self) -> list[str]:
        return self.evaluators[0].csv_header_row()

    def get_config_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {"dataset_names": self.dataset_names, "dataset_id": self.dataset_id}
        for key in ("truncate_dim", "query_prompts", "corpus_prompts"):
            if getattr(self, key, None) is not None:
                config[key] = getattr(self, key)
        return config


__all__ = ["NanoBEIREvaluator", "DATASET_NAME_TO_HUMAN_READABLE"]
