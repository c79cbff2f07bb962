"""``CrossEncoderCorrelationEvaluator``: correlation of a cross-encoder's pair scores with gold scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sentencekit.evaluation._pair_scoring import PairScoringEvaluator
from sentencekit.evaluation.metrics import pearson, spearman


class CrossEncoderCorrelationEvaluator(PairScoringEvaluator):
    """Pearson and Spearman correlation (``pearson``, ``spearman``; primary ``spearman``) between
    ``model.predict(sentence_pairs)`` and ``scores``.

    >>> from sentencekit import CrossEncoder
    >>> from sentencekit.datasets import load_stsb
    >>> from sentencekit.evaluation import CrossEncoderCorrelationEvaluator
    >>> pairs = load_stsb("dev")[:100]                                                  # doctest: +SKIP
    >>> evaluator = CrossEncoderCorrelationEvaluator([(p.sentence1, p.sentence2) for p in pairs],
    ...                                              [p.score / 5 for p in pairs], name="sts-dev")  # doctest: +SKIP
    >>> evaluator(CrossEncoder("path/to/sts-cross-encoder"))                            # doctest: +SKIP
    {'sts-dev_pearson': 0.91, 'sts-dev_spearman': 0.9}
    """

    def __init__(
        self,
        sentence_pairs: Sequence[tuple[str, str] | list[str]],
        scores: Sequence[float],
        name: str = "",
        batch_size: int = 32,
        show_progress_bar: bool = False,
        write_csv: bool = True,
    ) -> None:
        super().__init__(sentence_pairs, scores, name, batch_size, show_progress_bar, write_csv)
        self.scores = [float(s) for s in scores]
        self.csv_headers = ["epoch", "steps", "Pearson_Correlation", "Spearman_Correlation"]
        self.primary_metric = "spearman"

    targets_name = "scores"

    def compute_metrics(self, model: Any) -> dict[str, float]:
        predicted = self.predict(model)
        return {"pearson": pearson(self.scores, predicted), "spearman": spearman(self.scores, predicted)}
