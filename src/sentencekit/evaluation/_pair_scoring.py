"""What the cross-encoder evaluators share: (text, text) pairs, a target per pair, and one
``model.predict`` over all pairs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sentencekit.evaluation.evaluator_base import SentenceEvaluator, csv_name


class PairScoringEvaluator(SentenceEvaluator):
    """Base of evaluators that score ``sentence_pairs`` with a cross-encoder and compare the scores with one
    target per pair (``targets_name`` names them in errors: "labels", "scores")."""

    targets_name = "targets"

    def __init__(self, sentence_pairs: Sequence[tuple[str, str] | list[str]], targets: Sequence[Any], name: str,
                 batch_size: int, show_progress_bar: bool, write_csv: bool) -> None:
        super().__init__()
        if len(sentence_pairs) != len(targets):
            raise ValueError(f"sentence_pairs and {self.targets_name} must have the same length, got "
                             f"{len(sentence_pairs)} and {len(targets)}.")
        self.sentence_pairs = [tuple(pair) for pair in sentence_pairs]
        self._run_options(name, batch_size, show_progress_bar, write_csv, csv_name(type(self).__name__, name))

    def predict(self, model: Any) -> np.ndarray:
        """The model's scores for every pair (``[n]``, or ``[n, num_labels]``)."""
        return np.asarray(model.predict(self.sentence_pairs, batch_size=self.batch_size,
                                        show_progress_bar=self.show_progress_bar, convert_to_numpy=True))
