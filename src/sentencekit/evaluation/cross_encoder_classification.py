"""``CrossEncoderClassificationEvaluator``: a cross-encoder as a pair classifier. One output score:
best-threshold accuracy / F1 and average precision; several labels: accuracy and F1 of the argmax."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sentencekit.evaluation._pair_scoring import PairScoringEvaluator
from sentencekit.evaluation.metrics import average_precision, best_accuracy_threshold, best_f1_threshold, f1_scores

_BINARY_HEADERS = {"accuracy": "Accuracy", "accuracy_threshold": "Accuracy_Threshold", "f1": "F1",
                   "f1_threshold": "F1_Threshold", "precision": "Precision", "recall": "Recall",
                   "average_precision": "Average_Precision"}
_MULTICLASS_HEADERS = {"accuracy": "Accuracy", "f1_macro": "Macro_F1", "f1_micro": "Micro_F1",
                       "f1_weighted": "Weighted_F1"}


class CrossEncoderClassificationEvaluator(PairScoringEvaluator):
    """Classify ``sentence_pairs`` with ``model.predict`` and compare with ``labels``.

    - ``model.num_labels == 1`` (labels 0/1): ``accuracy``, ``accuracy_threshold``, ``f1``,
      ``f1_threshold``, ``precision``, ``recall`` (at the best-F1 threshold), ``average_precision``
      (primary); thresholds found by sorting the scores and sweeping, as in sentence-transformers.
    - more labels (labels are class indices): the argmax class; ``accuracy``, ``f1_macro`` (primary),
      ``f1_micro``, ``f1_weighted``.

    >>> from sentencekit import CrossEncoder
    >>> from sentencekit.evaluation import CrossEncoderClassificationEvaluator
    >>> evaluator = CrossEncoderClassificationEvaluator(
    ...     [("How do I get a refund?", "Can I have my money back?"), ("How do I get a refund?", "Paris is mild.")],
    ...     [1, 0], name="dup")
    >>> evaluator(CrossEncoder("path/to/reranker"))["dup_average_precision"]          # doctest: +SKIP
    1.0
    """

    def __init__(
        self,
        sentence_pairs: Sequence[tuple[str, str] | list[str]],
        labels: Sequence[int],
        name: str = "",
        batch_size: int = 32,
        show_progress_bar: bool = False,
        write_csv: bool = True,
    ) -> None:
        super().__init__(sentence_pairs, labels, name, batch_size, show_progress_bar, write_csv)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.csv_headers = ["epoch", "steps", *_BINARY_HEADERS.values()]  # set per model kind when called
        self.primary_metric = "average_precision"

    targets_name = "labels"

    def compute_metrics(self, model: Any) -> dict[str, float]:
        predicted = self.predict(model)
        if model.num_labels == 1:
            scores = predicted.reshape(len(self.labels))
            accuracy, accuracy_threshold = best_accuracy_threshold(scores, self.labels)
            f1, precision, recall, f1_threshold = best_f1_threshold(scores, self.labels)
            metrics = {"accuracy": accuracy, "accuracy_threshold": accuracy_threshold, "f1": f1,
                       "f1_threshold": f1_threshold, "precision": precision, "recall": recall,
                       "average_precision": average_precision(self.labels, scores)}
            headers, self.primary_metric = _BINARY_HEADERS, "average_precision"
        else:
            metrics = f1_scores(self.labels, predicted.reshape(len(self.labels), -1).argmax(axis=1))
            headers, self.primary_metric = _MULTICLASS_HEADERS, "f1_macro"
        self.csv_headers = ["epoch", "steps", *headers.values()]
        return metrics
