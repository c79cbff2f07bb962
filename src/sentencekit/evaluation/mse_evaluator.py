"""``MSEEvaluator``: mean squared error between a student's embeddings of target sentences and a
teacher's embeddings of the source sentences (knowledge distillation, multilingual training)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sentencekit.evaluation.evaluator_base import SentenceEvaluator


class MSEEvaluator(SentenceEvaluator):
    """``negative_mse`` = -100 x mean((teacher(source) - student(target))^2) over all dimensions, so
    that greater is better (primary). The teacher embeds ``source_sentences`` once, when the evaluator
    is built; the CSV records the positive MSE (x100).

    >>> from sentencekit.evaluation import MSEEvaluator
    >>> evaluator = MSEEvaluator(["Hello world"], ["Hallo Welt"], teacher_model=teacher, name="en-de")  # doctest: +SKIP
    >>> evaluator(student)                                                                          # doctest: +SKIP
    {'en-de_negative_mse': -0.0123}
    """

    def __init__(
        self,
        source_sentences: Sequence[str],
        target_sentences: Sequence[str],
        teacher_model: Any = None,
        show_progress_bar: bool = False,
        batch_size: int = 32,
        name: str = "",
        write_csv: bool = True,
        truncate_dim: int | None = None,
    ) -> None:
        super().__init__()
        if teacher_model is None:
            raise ValueError("MSEEvaluator needs a teacher_model to embed the source sentences.")
        if len(source_sentences) != len(target_sentences):
            raise ValueError(f"source_sentences and target_sentences must have the same length, got "
                             f"{len(source_sentences)} and {len(target_sentences)}.")
        self.target_sentences = list(target_sentences)
        self._run_options(name, batch_size, show_progress_bar, write_csv, "mse_evaluation_" + name + "_results.csv")
        self.truncate_dim = truncate_dim
        self.source_embeddings = np.asarray(self.embed_inputs(teacher_model, source_sentences, convert_to_numpy=True))
        self.csv_headers = ["epoch", "steps", "MSE"]
        self.primary_metric = "negative_mse"

    def compute_metrics(self, model: Any) -> dict[str, float]:
        target = np.asarray(self.embed_inputs(model, self.target_sentences, convert_to_numpy=True))
        mse = float(((self.source_embeddings.astype(np.float64) - target) ** 2).mean()) * 100
        return {"negative_mse": -mse}

    def csv_values(self, metrics: dict[str, float]) -> list[float]:
        return [-metrics["negative_mse"]]
