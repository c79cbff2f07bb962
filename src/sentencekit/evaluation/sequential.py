"""``SequentialEvaluator``: run several evaluators one after the other and combine their primary
metrics into one ``sequential_score``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sentencekit.evaluation.evaluator_base import SentenceEvaluator


class SequentialEvaluator(SentenceEvaluator):
    """Run ``evaluators`` in order; the result is the union of their metrics plus ``sequential_score``
    (primary) = ``main_score_function(list of each evaluator's primary metric)``, by default the last.
    Each evaluator writes its own CSV into ``output_path``.

    >>> from sentencekit.evaluation import SequentialEvaluator
    >>> evaluator = SequentialEvaluator([sts_evaluator, ir_evaluator],
    ...                                 main_score_function=lambda scores: sum(scores) / len(scores))  # doctest: +SKIP
    >>> evaluator(model)["sequential_score"]                                                         # doctest: +SKIP
    0.78
    """

    def __init__(self, evaluators: Iterable[Any],
                 main_score_function: Callable[[list[float]], float] = lambda scores: scores[-1]) -> None:
        super().__init__()
        self.evaluators = list(evaluators)
        self.main_score_function = main_score_function
        self.primary_metric = "sequential_score"

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        results: dict[str, float] = {}
        scores: list[float] = []
        for index, evaluator in enumerate(self.evaluators):
            evaluation = evaluator(model, output_path, epoch, steps)
            if not isinstance(evaluation, dict):  # an old-style evaluator returning one score
                evaluation = {f"evaluator_{index}": evaluation}
            primary = getattr(evaluator, "primary_metric", None)
            scores.append(evaluation[primary] if primary in evaluation else next(iter(evaluation.values())))
            results.update(evaluation)
        results["sequential_score"] = float(self.main_score_function(scores))
        return results
