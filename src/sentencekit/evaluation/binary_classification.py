"""``BinaryClassificationEvaluator``: how well a similarity threshold separates similar pairs (label 1)
from dissimilar ones (label 0): best accuracy and F1 with their thresholds, average precision, MCC."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sentencekit.evaluation.evaluator_base import (
    SentenceEvaluator,
    SimilarityName,
    csv_name,
    model_similarity_names,
    pairwise_scores,
    similarity_names,
)
from sentencekit.evaluation.metrics import (
    average_precision,
    best_accuracy_threshold,
    best_f1_threshold,
    matthews_corrcoef,
)

_METRICS = ("accuracy", "accuracy_threshold", "f1", "precision", "recall", "f1_threshold", "ap", "mcc")
_DISTANCES = ("euclidean", "manhattan")  # thresholds on these are distances: smaller means similar


class BinaryClassificationEvaluator(SentenceEvaluator):
    """Threshold the pair similarity to classify pairs as similar (1) or not (0).

    Metrics per similarity function ``fn`` (default: the model's): ``{fn}_accuracy``,
    ``{fn}_accuracy_threshold``, ``{fn}_f1``, ``{fn}_f1_threshold``, ``{fn}_precision``, ``{fn}_recall``
    (at the best-F1 threshold), ``{fn}_ap`` and ``{fn}_mcc`` (at the best-F1 threshold); ``max_*`` with
    several functions. Primary: ``{fn}_ap`` (``max_ap`` with several). Euclidean and Manhattan
    thresholds are distances (pairs at or under the threshold are similar), as in sentence-transformers.

    >>> from sentencekit.evaluation import BinaryClassificationEvaluator
    >>> evaluator = BinaryClassificationEvaluator(
    ...     ["How do I get a refund?", "How do I get a refund?"],
    ...     ["Can I have my money back?", "Paris is mild today."], [1, 0], name="dup")
    >>> results = evaluator(model)                              # doctest: +SKIP
    >>> evaluator.primary_metric                                # doctest: +SKIP
    'dup_cosine_ap'
    """

    def __init__(
        self,
        sentences1: Sequence[str],
        sentences2: Sequence[str],
        labels: Sequence[int],
        name: str = "",
        batch_size: int = 32,
        show_progress_bar: bool = False,
        write_csv: bool = True,
        truncate_dim: int | None = None,
        similarity_fn_names: Sequence[SimilarityName] | None = None,
    ) -> None:
        super().__init__()
        if not len(sentences1) == len(sentences2) == len(labels):
            raise ValueError(f"sentences1, sentences2 and labels must have the same length, got "
                             f"{len(sentences1)}, {len(sentences2)} and {len(labels)}.")
        if any(label not in (0, 1) for label in labels):
            raise ValueError("BinaryClassificationEvaluator labels must be 0 or 1.")
        self.sentences1, self.sentences2 = list(sentences1), list(sentences2)
        self.labels = [int(label) for label in labels]
        self._run_options(name, batch_size, show_progress_bar, write_csv,
                          csv_name("binary_classification_evaluation", name))
        self.truncate_dim = truncate_dim
        self.similarity_fn_names = similarity_names(similarity_fn_names)
        names = self.similarity_fn_names or ["cosine"]
        self.primary_metric = "max_ap" if len(names) > 1 else f"{names[0]}_ap"

    @property
    def csv_headers(self) -> list[str]:  # type: ignore[override]
        return ["epoch", "steps"] + [f"{fn}_{m}" for fn in self.similarity_fn_names or ["cosine"] for m in _METRICS]

    def _scores(self, fn: str, embeddings1: Any, embeddings2: Any) -> tuple[np.ndarray, bool]:
        """Pair scores and whether greater means more similar (distances for euclidean / manhattan)."""
        similarity = pairwise_scores(fn, embeddings1, embeddings2).detach().cpu().numpy()
        return (-similarity, False) if fn in _DISTANCES else (similarity, True)

    def compute_metrics(self, model: Any) -> dict[str, float]:
        if not self.similarity_fn_names:
            self.similarity_fn_names = model_similarity_names(model)
        # each distinct sentence is embedded once
        sentences = list(dict.fromkeys(self.sentences1 + self.sentences2))
        embeddings = self.embed_inputs(model, sentences, convert_to_numpy=True)
        row = {sentence: i for i, sentence in enumerate(sentences)}
        embeddings1 = embeddings[[row[s] for s in self.sentences1]]
        embeddings2 = embeddings[[row[s] for s in self.sentences2]]
        labels = np.asarray(self.labels)
        metrics: dict[str, float] = {}
        for fn in self.similarity_fn_names:
            scores, greater_is_better = self._scores(fn, embeddings1, embeddings2)
            accuracy, accuracy_threshold = best_accuracy_threshold(scores, labels, greater_is_better)
            f1, precision, recall, f1_threshold = best_f1_threshold(scores, labels, greater_is_better)
            predicted = scores >= f1_threshold if greater_is_better else scores <= f1_threshold
            metrics.update({
                f"{fn}_accuracy": accuracy, f"{fn}_accuracy_threshold": accuracy_threshold,
                f"{fn}_f1": f1, f"{fn}_f1_threshold": f1_threshold,
                f"{fn}_precision": precision, f"{fn}_recall": recall,
                f"{fn}_ap": average_precision(labels, scores if greater_is_better else -scores),
                f"{fn}_mcc": matthews_corrcoef(labels, predicted),
            })
        if len(self.similarity_fn_names) > 1:
            for m in ("accuracy", "accuracy_threshold", "f1", "f1_threshold", "precision", "recall", "ap", "mcc"):
                metrics[f"max_{m}"] = max(metrics[f"{fn}_{m}"] for fn in self.similarity_fn_names)
            self.primary_metric = "max_ap"
        else:
            self.primary_metric = f"{self.similarity_fn_names[0]}_ap"
        return metrics

    def csv_values(self, metrics: dict[str, float]) -> list[float]:
        return [metrics[header] for header in self.csv_headers[2:]]
