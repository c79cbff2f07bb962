"""The evaluator base class (sentence-transformers' ``SentenceEvaluator``, ``BaseEvaluator`` in v6) and
what every evaluator shares: metric-name prefixing, the primary metric, CSV output, embedding with a
model's ``encode`` / ``encode_query`` / ``encode_document``, and similarity-function names.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

from torch import Tensor

from sentencekit.similarity import (
    SimilarityFunction,
    check_similarity_fn_name,
    pairwise_similarity_fn,
    similarity_fn,
)

logger = logging.getLogger(__name__)

SimilarityName = Literal["cosine", "dot", "euclidean", "manhattan"] | SimilarityFunction | str


def similarity_names(names: Sequence[SimilarityName | None] | None) -> list[str]:
    """Canonical similarity-function names ("cosine", "dot", "euclidean", "manhattan"; enum members and
    aliases such as "dot_product" accepted), without repeats or Nones."""
    return list(dict.fromkeys(check_similarity_fn_name(name) for name in names or [] if name))


def model_similarity_names(model: Any, names: Sequence[SimilarityName] | None = None) -> list[str]:
    """:func:`similarity_names`, defaulting to the model's ``similarity_fn_name`` (cosine if it has none)."""
    return similarity_names(names) or similarity_names([getattr(model, "similarity_fn_name", None) or "cosine"])


def pairwise_scores(name: SimilarityName, a: Any, b: Any) -> Tensor:
    """Row-by-row similarity ``[n]`` under a similarity-function name (distances negated)."""
    return pairwise_similarity_fn(name)(a, b)


def all_pairs_fn(name: SimilarityName) -> Callable[[Any, Any], Tensor]:
    """All-pairs similarity function ``[n, m]`` for a similarity-function name."""
    return similarity_fn(name)


class SentenceEvaluator:
    """Base class of evaluators: ``evaluator(model, output_path=None, epoch=-1, steps=-1)`` returns a
    dict of float metrics named ``f"{name}_{metric}"`` (just ``metric`` without a name).

    Subclasses implement :meth:`compute_metrics` (metrics without the prefix, in CSV order) and set
    ``csv_file`` / ``csv_headers``; :meth:`__call__` writes the CSV row, prefixes the names and stores
    the metrics in the model card data when the model has any.

    >>> class Constant(SentenceEvaluator):
    ...     def compute_metrics(self, model):
    ...         self.primary_metric = "score"
    ...         return {"score": 1.0}
    >>> evaluator = Constant()
    >>> evaluator.name = "dev"
    >>> evaluator(None), evaluator.primary_metric
    ({'dev_score': 1.0}, 'dev_score')
    """

    name: str = ""
    csv_file: str = ""
    csv_headers: list[str] = []
    write_csv: bool = False
    batch_size: int = 32
    show_progress_bar: bool = False
    truncate_dim: int | None = None

    def __init__(self) -> None:
        self.greater_is_better = True
        self._primary_metric: str | None = None

    # -- metric names -------------------------------------------------------------------------------
    @property
    def primary_metric(self) -> str | None:
        """The metric that model selection should watch, with the name prefix."""
        metric = self._primary_metric
        if metric and self.name and not metric.startswith(f"{self.name}_"):
            return f"{self.name}_{metric}"
        return metric

    @primary_metric.setter
    def primary_metric(self, value: str | None) -> None:
        self._primary_metric = value

    def prefix_name_to_metrics(self, metrics: dict[str, Any], name: str) -> dict[str, Any]:
        """``{f"{name}_{key}": float(value)}`` (keys unchanged without a name)."""
        def as_float(value: Any) -> Any:
            try:
                return float(value)
            except (TypeError, ValueError):
                return value

        prefix = f"{name}_" if name else ""
        return {prefix + key: as_float(value) for key, value in metrics.items()}

    @property
    def description(self) -> str:
        """The class name without "Evaluator", split into words ("Information Retrieval")."""
        class_name = type(self).__name__.replace("Evaluator", "")
        return re.sub(r"([a-z])([A-Z])", r"\g<1> \g<2>", class_name)

    def get_config_dict(self) -> dict[str, Any]:
        """Settings worth recording with the results (e.g. in a model card)."""
        return {"truncate_dim": self.truncate_dim} if self.truncate_dim is not None else {}

    # -- running ------------------------------------------------------------------------------------
    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        metrics = self.compute_metrics(model)
        when = "" if epoch == -1 else f" in epoch {epoch}" + (f" after {steps} steps" if steps != -1 else "")
        logger.info("%s%s%s: %s", type(self).__name__, f" on {self.name}" if self.name else "", when,
                    ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        if output_path is not None and self.write_csv:
            self.append_csv_row(output_path, [epoch, steps, *self.csv_values(metrics)])
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics

    def compute_metrics(self, model: Any) -> dict[str, float]:
        """The metrics of ``model``, without the name prefix."""
        raise NotImplementedError

    def csv_values(self, metrics: dict[str, float]) -> list[float]:
        """The CSV row after ``epoch, steps``, in ``csv_headers`` order (default: the metrics' order)."""
        return list(metrics.values())

    def csv_header_row(self) -> list[str]:
        """The header line of a new CSV file (default: ``csv_headers``; evaluators that add columns extend it)."""
        return list(self.csv_headers)

    def append_csv_row(self, output_path: str, row: list[Any]) -> None:
        """Append ``row`` to ``output_path/csv_file``, writing :meth:`csv_header_row` first in a new file."""
        os.makedirs(output_path, exist_ok=True)
        path = os.path.join(output_path, self.csv_file)
        is_new = not os.path.isfile(path)
        with open(path, "a" if not is_new else "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            if is_new:
                writer.writerow(self.csv_header_row())
            writer.writerow(row)

    def store_metrics_in_model_card_data(self, model: Any, metrics: dict[str, Any], epoch: int = 0,
                                         step: int = 0) -> None:
        card_data = getattr(model, "model_card_data", None)
        if card_data is not None and hasattr(card_data, "set_evaluation_metrics"):
            card_data.set_evaluation_metrics(self, metrics, epoch, step)

    # -- embedding ----------------------------------------------------------------------------------
    def embed_inputs(self, model: Any, sentences: Sequence[Any],
                     encode_fn_name: Literal["query", "document"] | None = None, **kwargs: Any) -> Any:
        """Embed with ``model.encode`` (or ``encode_query`` / ``encode_document``, when the model has
        them) using the evaluator's batch size, progress bar and ``truncate_dim``; ``kwargs`` override
        (e.g. ``convert_to_tensor=True``). Options left at None are not passed."""
        encode = getattr(model, f"encode_{encode_fn_name}", None) if encode_fn_name else None
        if encode is None:
            encode = model.encode
        options: dict[str, Any] = {"batch_size": self.batch_size, "show_progress_bar": self.show_progress_bar,
                                   "truncate_dim": self.truncate_dim, **kwargs}
        return encode(list(sentences), **{k: v for k, v in options.items() if v is not None})

    def _run_options(self, name: str, batch_size: int, show_progress_bar: bool, write_csv: bool,
                     csv_file: str) -> None:
        """The options every evaluator takes: its name (the metric prefix), batching, progress bar, and
        whether (and where) it writes its CSV."""
        self.name = name
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar
        self.write_csv = write_csv
        self.csv_file = csv_file


BaseEvaluator = SentenceEvaluator  # sentence-transformers v6 name


def csv_name(stem: str, name: str, suffix: str = "_results.csv") -> str:
    """``f"{stem}_{name}{suffix}"``, or ``f"{stem}{suffix}"`` without a name."""
    return stem + (f"_{name}" if name else "") + suffix


__all__ = ["SentenceEvaluator", "BaseEvaluator", "SimilarityFunction", "similarity_names", "model_similarity_names",
           "pairwise_scores", "all_pairs_fn", "csv_name"]
