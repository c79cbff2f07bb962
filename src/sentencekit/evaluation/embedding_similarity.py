"""``EmbeddingSimilarityEvaluator``: how well embedding similarities of sentence pairs correlate (Pearson
and Spearman) with gold similarity scores, e.g. STS Benchmark."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from sentencekit.evaluation.evaluator_base import (
    SentenceEvaluator,
    SimilarityName,
    csv_name,
    model_similarity_names,
    pairwise_scores,
    similarity_names,
)
from sentencekit.evaluation.metrics import pearson, spearman
from sentencekit.quantization import check_precision


class EmbeddingSimilarityEvaluator(SentenceEvaluator):
    """Correlation of ``similarity(embed(sentences1[i]), embed(sentences2[i]))`` with ``scores[i]``.

    Metrics: ``pearson_{fn}`` and ``spearman_{fn}`` per similarity function (default: the model's
    ``similarity_fn_name``), plus ``pearson_max`` / ``spearman_max`` with several; the primary metric is
    ``spearman_{main_similarity}``, else ``spearman_max`` with several functions, else ``spearman_{fn}``.
    With ``precision`` ("float32", "int8", "uint8", "binary", "ubinary"), normalized embeddings are
    quantized to it before scoring (binary ones unpacked to bits), and the CSV name ends with it.

    >>> from sentencekit import SentenceTransformer
    >>> from sentencekit.datasets import load_stsb
    >>> from sentencekit.evaluation import EmbeddingSimilarityEvaluator
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")        # doctest: +SKIP
    >>> pairs = load_stsb("dev")[:200]                                               # doctest: +SKIP
    >>> evaluator = EmbeddingSimilarityEvaluator([p.sentence1 for p in pairs], [p.sentence2 for p in pairs],
    ...                                          [p.score / 5 for p in pairs], name="sts-dev")  # doctest: +SKIP
    >>> results = evaluator(model)                                                   # doctest: +SKIP
    >>> evaluator.primary_metric, round(results[evaluator.primary_metric], 2)        # doctest: +SKIP
    ('sts-dev_spearman_cosine', 0.87)
    """

    def __init__(
        self,
        sentences1: Sequence[str],
        sentences2: Sequence[str],
        scores: Sequence[float],
        batch_size: int = 16,
        main_similarity: SimilarityName | None = None,
        similarity_fn_names: Sequence[SimilarityName] | None = None,
        name: str = "",
        show_progress_bar: bool = False,
        write_csv: bool = True,
        precision: Literal["float32", "int8", "uint8", "binary", "ubinary"] | None = None,
        truncate_dim: int | None = None,
    ) -> None:
        super().__init__()
        if not len(sentences1) == len(sentences2) == len(scores):
            raise ValueError(f"sentences1, sentences2 and scores must have the same length, got "
                             f"{len(sentences1)}, {len(sentences2)} and {len(scores)}.")
        self.sentences1, self.sentences2 = list(sentences1), list(sentences2)
        self.scores = [float(s) for s in scores]
        self.precision = check_precision(precision) if precision else None
        self._run_options(name, batch_size, show_progress_bar, write_csv,
                          csv_name("similarity_evaluation", "_".join(part for part in (name, self.precision) if part)))
        self.main_similarity = (similarity_names([main_similarity]) or [None])[0]
        # empty: the model's similarity function, decided at call time
        self.similarity_fn_names = similarity_names([*(similarity_fn_names or []), main_similarity])
        self.truncate_dim = truncate_dim
        self._set_primary(self.similarity_fn_names or ["cosine"])

    @property
    def csv_headers(self) -> list[str]:  # type: ignore[override]
        return ["epoch", "steps"] + [f"{m}_{fn}" for fn in self.similarity_fn_names or ["cosine"]
                                     for m in ("pearson", "spearman")]

    def _set_primary(self, names: list[str]) -> None:
        if self.main_similarity:
            self.primary_metric = f"spearman_{self.main_similarity}"
        else:
            self.primary_metric = "spearman_max" if len(names) > 1 else f"spearman_{names[0]}"

    def _embed(self, model: Any, sentences: list[str]) -> Any:
        if self.precision is None:
            return self.embed_inputs(model, sentences, convert_to_numpy=True)
        embeddings = self.embed_inputs(model, sentences, convert_to_numpy=True, precision=self.precision,
                                       normalize_embeddings=True)
        if self.precision == "binary":  # packed bits stored as int8 (minus 128): back to bytes
            embeddings = (embeddings.astype(np.int16) + 128).astype(np.uint8)
        if self.precision in ("binary", "ubinary"):
            embeddings = np.unpackbits(embeddings, axis=1)
        return embeddings.astype(np.float32)

    def compute_metrics(self, model: Any) -> dict[str, float]:
        if not self.similarity_fn_names:
            self.similarity_fn_names = model_similarity_names(model)
        names = self.similarity_fn_names
        embeddings1, embeddings2 = self._embed(model, self.sentences1), self._embed(model, self.sentences2)
        metrics: dict[str, float] = {}
        for fn in names:
            predicted = pairwise_scores(fn, embeddings1, embeddings2).detach().cpu().numpy()
            metrics[f"pearson_{fn}"] = pearson(self.scores, predicted)
            metrics[f"spearman_{fn}"] = spearman(self.scores, predicted)
        if len(names) > 1:
            metrics["pearson_max"] = max(metrics[f"pearson_{fn}"] for fn in names)
            metrics["spearman_max"] = max(metrics[f"spearman_{fn}"] for fn in names)
        self._set_primary(names)
        return metrics

    def csv_values(self, metrics: dict[str, float]) -> list[float]:
        return [metrics[header] for header in self.csv_headers[2:]]

    def get_config_dict(self) -> dict[str, Any]:
        config = super().get_config_dict()
        if self.precision is not None:
            config["precision"] = self.precision
        return config
