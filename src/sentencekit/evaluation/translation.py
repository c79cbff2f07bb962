"""``TranslationEvaluator``: whether each source sentence's nearest target (by cosine) is its own
translation, and vice versa."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from sentencekit.evaluation.evaluator_base import SentenceEvaluator, csv_name
from sentencekit.similarity import cos_sim

logger = logging.getLogger(__name__)


class TranslationEvaluator(SentenceEvaluator):
    """Given parallel ``source_sentences[i]`` / ``target_sentences[i]``, the share of sources whose most
    similar target is their translation (``src2trg_accuracy``), the same from targets
    (``trg2src_accuracy``) and their mean (``mean_accuracy``, primary). A tie counts the first target.

    >>> from sentencekit.evaluation import TranslationEvaluator
    >>> evaluator = TranslationEvaluator(["Hello world", "Thank you"], ["Hallo Welt", "Danke"], name="en-de")
    >>> evaluator(model)                                          # doctest: +SKIP
    {'en-de_src2trg_accuracy': 1.0, 'en-de_trg2src_accuracy': 1.0, 'en-de_mean_accuracy': 1.0}
    """

    def __init__(
        self,
        source_sentences: Sequence[str],
        target_sentences: Sequence[str],
        show_progress_bar: bool = False,
        batch_size: int = 16,
        name: str = "",
        print_wrong_matches: bool = False,
        write_csv: bool = True,
        truncate_dim: int | None = None,
    ) -> None:
        super().__init__()
        if len(source_sentences) != len(target_sentences):
            raise ValueError(f"source_sentences and target_sentences must have the same length, got "
                             f"{len(source_sentences)} and {len(target_sentences)}.")
        self.source_sentences, self.target_sentences = list(source_sentences), list(target_sentences)
        self._run_options(name, batch_size, show_progress_bar, write_csv, csv_name("translation_evaluation", name))
        self.print_wrong_matches = print_wrong_matches
        self.truncate_dim = truncate_dim
        self.csv_headers = ["epoch", "steps", "src2trg", "trg2src"]
        self.primary_metric = "mean_accuracy"

    def _accuracy(self, similarities: np.ndarray, queries: list[str], candidates: list[str]) -> float:
        """Share of rows whose best column is the row's own index."""
        best = similarities.argmax(axis=1)
        if self.print_wrong_matches:
            for i in np.flatnonzero(best != np.arange(len(best))):
                logger.info("Wrong match: %r -> %r instead of %r", queries[i], candidates[best[i]], candidates[i])
        return float((best == np.arange(len(best))).mean()) if len(best) else 0.0

    def compute_metrics(self, model: Any) -> dict[str, float]:
        source = self.embed_inputs(model, self.source_sentences, convert_to_tensor=True)
        target = self.embed_inputs(model, self.target_sentences, convert_to_tensor=True)
        similarities = cos_sim(source, target).detach().cpu().numpy()
        src2trg = self._accuracy(similarities, self.source_sentences, self.target_sentences)
        trg2src = self._accuracy(similarities.T, self.target_sentences, self.source_sentences)
        return {"src2trg_accuracy": src2trg, "trg2src_accuracy": trg2src, "mean_accuracy": (src2trg + trg2src) / 2}

    def csv_values(self, metrics: dict[str, float]) -> list[float]:
        return [metrics["src2trg_accuracy"], metrics["trg2src_accuracy"]]
