"""``MultiVectorDistillationEvaluator``: how close a multi-vector (ColBERT) model's scores are to a teacher's, as
sentence-transformers 6.2's evaluator of that name: the KL divergence of the two score distributions (as the
distillation loss computes it) and their Spearman rank correlation (primary)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sentencekit.evaluation.evaluator_base import SentenceEvaluator, csv_name
from sentencekit.evaluation.metrics import spearman
from sentencekit.evaluation.multivector_evaluation import MultiVectorEvaluatorMixin
from sentencekit.losses._base import function_name
from sentencekit.losses.distill_kl_div import distillation_kl, set_temperatures, temperature_config


class MultiVectorDistillationEvaluator(MultiVectorEvaluatorMixin, SentenceEvaluator):
    """Score ``queries`` against their ``documents`` with the model (``encode_query`` / ``encode_document`` and
    ``model.similarity_pairwise``, or ``similarity_fct(queries, documents) -> [n]``, e.g.
    ``mean_colbert_scores_pairwise`` to mirror a training scorer) and compare with the teacher's ``scores``:

    - candidate lists (the distillation training format): ``documents`` holds ``N`` documents per query and
      ``scores`` is ``[queries, N]``. ``kl_divergence`` is the loss's: ``KL(softmax(teacher / T_t) ||
      softmax(student / T_s)) * T_s**2`` per query, averaged; ``spearman`` the mean per-query rank correlation
      (queries whose teacher or student scores are constant are left out; 0.0 if all are);
    - one document per query, ``scores`` ``[queries]``: one distribution over all pairs (the KL is its full
      divergence, not a mean) and one global correlation.

    Temperatures as ``MultiVectorDistillKLDivLoss`` (``student_temperature`` / ``teacher_temperature`` default to
    ``temperature``). Metrics ``kl_divergence`` and ``spearman`` (primary, higher is better); CSV
    ``distillation_evaluation[_{name}]_results.csv``. Raises ``ValueError`` for lengths that differ, ragged
    candidate lists, scores of the wrong shape, or a temperature that is not a positive finite number.

    >>> from sentencekit.evaluation import MultiVectorDistillationEvaluator
    >>> evaluator = MultiVectorDistillationEvaluator(["q"], [["good", "bad"]], [[5.0, 1.0]], name="toy")
    >>> evaluator.primary_metric
    'toy_spearman'
    """

    def __init__(self, queries: Sequence[str], documents: Sequence[str] | Sequence[Sequence[str]],
                 scores: Sequence[float] | Sequence[Sequence[float]] | Tensor, *, temperature: float = 1.0,
                 student_temperature: float | None = None, teacher_temperature: float | None = None,
                 similarity_fct: Callable[[Any, Any], Tensor] | None = None, name: str = "", batch_size: int = 16,
                 show_progress_bar: bool = False, write_csv: bool = True) -> None:
        super().__init__()
        if not len(queries) == len(documents) == len(scores):
            raise ValueError(f"queries ({len(queries)}), documents ({len(documents)}) and scores ({len(scores)}) must "
                             "have the same length.")
        self.queries = list(queries)
        self.nested = bool(documents) and isinstance(documents[0], (list, tuple))
        ways = len(documents[0]) if self.nested else 0
        if self.nested and any(len(row) != ways for row in documents):
            raise ValueError("Every query needs the same number of candidate documents.")
        if self.nested and not isinstance(scores, Tensor) and any(
                not isinstance(row, (list, tuple)) or len(row) != ways for row in scores):
            raise ValueError(f"With {ways} candidate documents per query, scores must be [{len(queries)}, {ways}]: "
                             "one teacher score per candidate.")
        self.scores = torch.as_tensor(scores if not isinstance(scores, Tensor) else scores.detach().cpu(),
                                      dtype=torch.float32)
        if self.nested:
            if tuple(self.scores.shape) != (len(queries), ways):
                raise ValueError(f"With {ways} candidate documents per query, scores must be [{len(queries)}, {ways}]; "
                                 f"got {tuple(self.scores.shape)}.")
            self.documents: list[Any] = [list(row) for row in documents]
        else:
            if self.scores.dim() != 1:
                raise ValueError(f"With one document per query, scores must be 1-D; got {tuple(self.scores.shape)}. "
                                 "Give a list of candidate documents per query for 2-D scores.")
            self.documents = list(documents)
        set_temperatures(self, temperature, student_temperature, teacher_temperature)
        self.similarity_fct = similarity_fct
        self._run_options(name, batch_size, show_progress_bar, write_csv, csv_name("distillation_evaluation", name))
        self.csv_headers = ["epoch", "steps", "kl_divergence", "spearman"]
        self.primary_metric = "spearman"

    def student_scores(self, model: Any) -> Tensor:
        """The model's scores, shaped as the teacher's (``[queries, N]`` or ``[queries]``), float32 on the CPU."""
        queries = self.embed_inputs(model, self.queries, "query")
        pairwise = self.similarity_fct if self.similarity_fct is not None else model.similarity_pairwise
        if not self.nested:
            return pairwise(queries, self.embed_inputs(model, self.documents, "document")).float().cpu()
        ways = len(self.documents[0])
        documents = self.embed_inputs(model, [d for row in self.documents for d in row], "document")
        return torch.stack([pairwise(queries, documents[way::ways]).float().cpu() for way in range(ways)], dim=1)

    def compute_metrics(self, model: Any) -> dict[str, float]:
        with torch.no_grad():
            student = self.student_scores(model)
        teacher = self.scores
        rows = (student, teacher) if self.nested else (student[None], teacher[None])
        kl = float(distillation_kl(*rows, self.student_temperature, self.teacher_temperature))
        correlations = [spearman(t, s) for s, t in zip(*rows)]
        correlations = [c for c in correlations if not np.isnan(c)]  # a constant row has no rank correlation
        return {"kl_divergence": kl, "spearman": float(np.mean(correlations)) if correlations else 0.0}

    def get_config_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {key: value for key, value in temperature_config(self).items()
                                  if key != "temperature" or value != 1.0}
        if self.similarity_fct is not None:
            config["similarity_fct"] = function_name(self.similarity_fct)
        return config


__all__ = ["MultiVectorDistillationEvaluator"]
