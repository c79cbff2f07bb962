"""``TripletEvaluator``: how often an anchor is more similar to its positive than to its negative."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sentencekit.evaluation.evaluator_base import SentenceEvaluator, SimilarityName, csv_name, pairwise_scores
from sentencekit.similarity import SimilarityFunction, check_similarity_fn_name


class TripletEvaluator(SentenceEvaluator):
    """Accuracy of ``similarity(anchor, positive) > similarity(anchor, negative) + margin``.

    Anchors are embedded with ``encode_query``, positives and negatives with ``encode_document``.
    ``margin`` is a number for every function or a ``{fn: margin}`` dict (default 0). Metrics:
    ``{fn}_accuracy`` per similarity function (default: the model's), plus ``max_accuracy`` with several;
    primary ``{main_similarity_function}_accuracy``, else ``max_accuracy`` / ``{fn}_accuracy``.

    >>> from sentencekit.evaluation import TripletEvaluator
    >>> evaluator = TripletEvaluator(["How do I get a refund?"], ["Refunds take 5 days."],
    ...                              ["Paris is mild today."], name="toy")
    >>> evaluator(model)                                          # doctest: +SKIP
    {'toy_cosine_accuracy': 1.0}
    """

    def __init__(
        self,
        anchors: Sequence[str],
        positives: Sequence[str],
        negatives: Sequence[str],
        main_similarity_function: SimilarityName | None = None,
        margin: float | dict[str, float] | None = None,
        name: str = "",
        batch_size: int = 16,
        show_progress_bar: bool = False,
        write_csv: bool = True,
        truncate_dim: int | None = None,
        similarity_fn_names: Sequence[SimilarityName] | None = None,
    ) -> None:
        super().__init__()
        if not len(anchors) == len(positives) == len(negatives):
            raise ValueError(f"anchors, positives and negatives must have the same length, got "
                             f"{len(anchors)}, {len(positives)} and {len(negatives)}.")
        self.anchors, self.positives, self.negatives = list(anchors), list(positives), list(negatives)
        self.main_similarity_function = (self._similarity_names([main_similarity_function]) or [None])[0]
        # empty: the model's similarity function, decided at call time
        self.similarity_fn_names = self._similarity_names([*(similarity_fn_names or []), main_similarity_function])
        self.margin = self._margins(margin)
        self._run_options(name, batch_size, show_progress_bar, write_csv, csv_name("triplet_evaluation", name))
        self.truncate_dim = truncate_dim
        self._set_primary(self.similarity_fn_names or [self.default_similarity])

    # -- the similarity functions (what the multi-vector flavour changes) --------------------------------
    #: the similarity named before the first call when none is given (the model's decides at call time)
    default_similarity = "cosine"

    @staticmethod
    def similarity_choices() -> list[str]:
        """Every similarity-function name this evaluator scores with (the keys of ``margin``)."""
        return SimilarityFunction.possible_values()

    @staticmethod
    def canonical_similarity(name: Any) -> str:
        """A similarity-function name (enum members and aliases accepted) as its canonical name; raises
        ``ValueError`` for an unknown one."""
        return check_similarity_fn_name(name)

    @staticmethod
    def pairwise(name: str, a: Any, b: Any) -> np.ndarray:
        """Row-by-row scores ``[n]`` of embeddings ``a`` and ``b`` under ``name`` (distances negated)."""
        return pairwise_scores(name, a, b).detach().cpu().numpy()

    def _similarity_names(self, names: Sequence[Any]) -> list[str]:
        return list(dict.fromkeys(self.canonical_similarity(name) for name in names if name))

    def _margins(self, margin: float | dict[Any, float] | None) -> dict[str, float]:
        margins = dict.fromkeys(self.similarity_choices(), 0.0)
        if isinstance(margin, dict):
            margins.update({self.canonical_similarity(fn): float(m) for fn, m in margin.items()})
        elif isinstance(margin, (int, float)):
            margins = dict.fromkeys(margins, float(margin))
        elif margin is not None:
            raise ValueError("margin should be a number or a dict of {similarity function name: margin}.")
        return margins

    @property
    def csv_headers(self) -> list[str]:  # type: ignore[override]
        return ["epoch", "steps"] + [f"accuracy_{fn}" for fn in self.similarity_fn_names or [self.default_similarity]]

    def _set_primary(self, names: list[str]) -> None:
        if self.main_similarity_function:
            self.primary_metric = f"{self.main_similarity_function}_accuracy"
        else:
            self.primary_metric = "max_accuracy" if len(names) > 1 else f"{names[0]}_accuracy"

    def compute_metrics(self, model: Any) -> dict[str, float]:
        if not self.similarity_fn_names:
            self.similarity_fn_names = self._similarity_names([getattr(model, "similarity_fn_name", None)
                                                               or self.default_similarity])
        anchors = self.embed_inputs(model, self.anchors, "query", convert_to_numpy=True)
        positives = self.embed_inputs(model, self.positives, "document", convert_to_numpy=True)
        negatives = self.embed_inputs(model, self.negatives, "document", convert_to_numpy=True)
        metrics: dict[str, float] = {}
        for fn in self.similarity_fn_names:
            positive_scores = self.pairwise(fn, anchors, positives)
            negative_scores = self.pairwise(fn, anchors, negatives)
            metrics[f"{fn}_accuracy"] = float(np.mean(positive_scores > negative_scores + self.margin[fn]))
        if len(self.similarity_fn_names) > 1:
            metrics["max_accuracy"] = max(metrics.values())
        self._set_primary(self.similarity_fn_names)
        return metrics

    def csv_values(self, metrics: dict[str, float]) -> list[float]:
        return [metrics[f"{fn}_accuracy"] for fn in self.similarity_fn_names]

    def get_config_dict(self) -> dict[str, Any]:
        config = super().get_config_dict()
        if any(self.margin.values()):
            config["margin"] = self.margin
        return config
