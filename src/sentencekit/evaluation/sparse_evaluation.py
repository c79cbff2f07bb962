"""Evaluators for sparse encoders, as ``sentence_transformers.sparse_encoder.evaluation`` (6.2): each is the
dense evaluator (same arguments, metrics and primary metric) with a ``max_active_dims`` cap on the
embeddings and the sparsity of what it embedded reported next to the metrics.

Only the embedding step differs (:meth:`SparseEvaluatorMixin.embed_inputs`): texts go through
``SparseEncoder.encode`` (sparse COO tensors on the CPU, ``max_active_dims`` applied), and every embedded
batch's non-zero counts are recorded per role (query / corpus, anchor / positive / negative, or one role).
After the dense metrics, ``{role}_active_dims`` (mean non-zero weights per text) and
``{role}_sparsity_ratio`` (``1 - active_dims / dim``) are added, plus ``avg_flops`` for retrieval: the
expected number of multiplications of a query-document dot product, ``mean query count vector . mean
corpus count vector`` (count vector: how many texts have each dimension active). Means are over texts
(sentence-transformers averages per ``encode`` call; the same whenever one call embeds a role). The CSV
row gets the sparsity columns after the dense ones (:meth:`SentenceEvaluator.csv_header_row`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from sentencekit.evaluation.binary_classification import BinaryClassificationEvaluator
from sentencekit.evaluation.embedding_similarity import EmbeddingSimilarityEvaluator
from sentencekit.evaluation.information_retrieval import InformationRetrievalEvaluator
from sentencekit.evaluation.mse_evaluator import MSEEvaluator
from sentencekit.evaluation.reranking import RerankingEvaluator
from sentencekit.evaluation.translation import TranslationEvaluator
from sentencekit.evaluation.triplet_evaluator import TripletEvaluator
from sentencekit.similarity import dot_score


class SparseEvaluatorMixin:
    """The sparse embedding step and sparsity metrics of the ``Sparse*Evaluator`` classes (put it first
    among the bases, before the dense evaluator).

    ``sparsity_roles`` names the metric prefixes (``("",)``: plain ``active_dims`` / ``sparsity_ratio``);
    :meth:`_role` maps an ``embed_inputs`` call to one. ``with_flops`` adds ``avg_flops`` (needs the roles
    ``query`` and ``corpus``).
    """

    sparsity_roles: tuple[str, ...] = ("",)
    with_flops: bool = False
    max_active_dims: int | None = None
    _stats: dict[str, list[Any]] | None = None  # role -> [rows, non-zeros, count vector]; None outside a call
    #: the last call's ``role -> [texts, non-zero weights, per-dimension count of texts with it active]``
    #: (what ``SparseNanoBEIREvaluator`` aggregates over its subsets)
    last_stats: dict[str, list[Any]] | None = None
    _calls: int = 0

    def _sparse_setup(self, max_active_dims: int | None, truncate_dim: int | None) -> None:
        from sentencekit.pipeline.sparse_output import check_max_active_dims

        if truncate_dim is not None:
            raise ValueError("truncate_dim slices dense embeddings; sparse evaluators cap embeddings with "
                             "max_active_dims instead.")
        self.max_active_dims = check_max_active_dims(max_active_dims)

    # -- running ------------------------------------------------------------------------------------
    def compute_metrics(self, model: Any) -> dict[str, float]:
        self._stats, self._calls = {}, 0
        try:
            metrics = super().compute_metrics(model)  # type: ignore[misc]
            metrics.update(self.sparsity_metrics())
        finally:
            self.last_stats, self._stats = self._stats, None
        return metrics

    def sparsity_metrics(self) -> dict[str, float]:
        """``{role}_active_dims``, ``{role}_sparsity_ratio`` (and ``avg_flops``) of the current call."""
        stats = self._stats or {}
        metrics: dict[str, float] = {}
        for role in self.sparsity_roles:
            prefix = f"{role}_" if role else ""
            rows, nonzero, counts = stats.get(role, (0, 0, None))
            active = nonzero / rows if rows else 0.0
            dim = counts.shape[0] if counts is not None else 0
            metrics[f"{prefix}active_dims"] = float(active)
            metrics[f"{prefix}sparsity_ratio"] = float(1.0 - active / dim) if dim else 1.0
        if self.with_flops:
            query, corpus = stats.get("query"), stats.get("corpus")
            flops = 0.0
            if query and corpus and query[0] and corpus[0]:
                flops = float(torch.dot(query[2] / query[0], corpus[2] / corpus[0]))
            metrics["avg_flops"] = flops
        return metrics

    def _role(self, encode_fn_name: str | None) -> str:
        if self.sparsity_roles == ("",):
            return ""
        return "query" if encode_fn_name == "query" else "corpus"

    def _record(self, role: str, embeddings: Tensor) -> None:
        t = embeddings.coalesce() if embeddings.is_sparse else embeddings
        if t.dim() == 1:
            t = t.unsqueeze(0)
        if t.is_sparse:
            columns = t.indices()[1][t.values() != 0]
            counts = torch.bincount(columns, minlength=t.shape[1]).double()
        else:
            counts = (t != 0).sum(dim=0).double()
        assert self._stats is not None  # only called while compute_metrics runs
        entry = self._stats.setdefault(role, [0, 0, torch.zeros(t.shape[1], dtype=torch.float64)])
        entry[0] += t.shape[0]
        entry[1] += int(counts.sum())
        entry[2] = entry[2] + counts.cpu()

    # -- embedding ----------------------------------------------------------------------------------
    def embed_inputs(self, model: Any, sentences: Sequence[Any],
                     encode_fn_name: Literal["query", "document"] | None = None, **kwargs: Any) -> Any:
        """Embed with ``model.encode`` / ``encode_query`` / ``encode_document`` of a ``SparseEncoder``:
        sparse COO ``[n, dim]`` float32 on the CPU, ``max_active_dims`` applied; a dense tensor where the
        dense evaluator asked for NumPy (``convert_to_numpy=True``: it indexes rows or compares arrays).
        Records the sparsity while the evaluator runs. A model that is not a ``SparseEncoder`` (e.g. the
        dense teacher of :class:`SparseMSEEvaluator`) is embedded the dense way."""
        from sentencekit import SparseEncoder

        if not isinstance(model, SparseEncoder):
            return super().embed_inputs(model, sentences, encode_fn_name, **kwargs)  # type: ignore[misc]
        dense = bool(kwargs.pop("convert_to_numpy", False))
        kwargs.pop("convert_to_tensor", None)
        encode = getattr(model, f"encode_{encode_fn_name}") if encode_fn_name else model.encode
        options = {"batch_size": self.batch_size, "show_progress_bar": self.show_progress_bar,  # type: ignore[attr-defined]
                   "max_active_dims": self.max_active_dims, **kwargs}
        embeddings = encode(list(sentences), convert_to_tensor=True, convert_to_sparse_tensor=not dense,
                            save_to_cpu=True, **{k: v for k, v in options.items() if v is not None})
        if self._stats is not None:
            self._record(self._role(encode_fn_name), embeddings)
            self._calls += 1
        return embeddings

    # -- CSV: the dense columns, then the sparsity ones ------------------------------------------------
    def _sparsity_keys(self) -> list[str]:
        keys = [f"{role}_{m}" if role else m for role in self.sparsity_roles for m in ("active_dims", "sparsity_ratio")]
        return keys + (["avg_flops"] if self.with_flops else [])

    def csv_header_row(self) -> list[str]:
        return [*super().csv_header_row(), *self._sparsity_keys()]  # type: ignore[misc]

    def csv_values(self, metrics: dict[str, float]) -> list[float]:
        return [*super().csv_values(metrics), *(metrics[k] for k in self._sparsity_keys())]  # type: ignore[misc]

    def get_config_dict(self) -> dict[str, Any]:
        config = super().get_config_dict()  # type: ignore[misc]
        if self.max_active_dims is not None:
            config["max_active_dims"] = self.max_active_dims
        return config


class SparseInformationRetrievalEvaluator(SparseEvaluatorMixin, InformationRetrievalEvaluator):
    """:class:`~sentencekit.evaluation.InformationRetrievalEvaluator` for sparse encoders (score function:
    the model's, dot product by default) plus ``query_active_dims``, ``query_sparsity_ratio``,
    ``corpus_active_dims``, ``corpus_sparsity_ratio`` and ``avg_flops``; ``max_active_dims`` caps the
    embeddings. Takes the dense evaluator's arguments (``truncate_dim`` must stay None).

    >>> evaluator = SparseInformationRetrievalEvaluator(
    ...     queries={"q1": "How do I get a refund?"}, corpus={"d1": "Refunds take 5 days.", "d2": "Paris."},
    ...     relevant_docs={"q1": {"d1"}}, name="toy")
    >>> evaluator.primary_metric
    'toy_cosine_ndcg@10'
    """

    sparsity_roles = ("query", "corpus")
    with_flops = True

    def __init__(self, *args: Any, max_active_dims: int | None = None, **kwargs: Any) -> None:
        self._sparse_setup(max_active_dims, kwargs.get("truncate_dim"))
        super().__init__(*args, **kwargs)


class SparseRerankingEvaluator(SparseEvaluatorMixin, RerankingEvaluator):
    """:class:`~sentencekit.evaluation.RerankingEvaluator` for sparse encoders, scoring with
    ``similarity_fct`` (default ``dot_score``) plus ``query_active_dims``, ``query_sparsity_ratio``,
    ``corpus_active_dims`` and ``corpus_sparsity_ratio``."""

    sparsity_roles = ("query", "corpus")

    def __init__(self, *args: Any, max_active_dims: int | None = None,
                 similarity_fct: Callable[[Any, Any], Tensor] = dot_score, **kwargs: Any) -> None:
        self._sparse_setup(max_active_dims, kwargs.get("truncate_dim"))
        super().__init__(*args, similarity_fct=similarity_fct, **kwargs)


class SparseEmbeddingSimilarityEvaluator(SparseEvaluatorMixin, EmbeddingSimilarityEvaluator):
    """:class:`~sentencekit.evaluation.EmbeddingSimilarityEvaluator` for sparse encoders plus
    ``active_dims`` and ``sparsity_ratio`` (over both sentence lists). No ``precision`` (quantization is
    for dense embeddings)."""

    def __init__(self, *args: Any, max_active_dims: int | None = None, **kwargs: Any) -> None:
        self._sparse_setup(max_active_dims, kwargs.get("truncate_dim"))
        if kwargs.get("precision") is not None:
            raise ValueError("precision quantizes dense embeddings; SparseEmbeddingSimilarityEvaluator has none.")
        super().__init__(*args, **kwargs)


class SparseBinaryClassificationEvaluator(SparseEvaluatorMixin, BinaryClassificationEvaluator):
    """:class:`~sentencekit.evaluation.BinaryClassificationEvaluator` for sparse encoders plus
    ``active_dims`` and ``sparsity_ratio``."""

    def __init__(self, *args: Any, max_active_dims: int | None = None, **kwargs: Any) -> None:
        self._sparse_setup(max_active_dims, kwargs.get("truncate_dim"))
        super().__init__(*args, **kwargs)


class SparseTripletEvaluator(SparseEvaluatorMixin, TripletEvaluator):
    """:class:`~sentencekit.evaluation.TripletEvaluator` for sparse encoders plus ``anchor_active_dims``,
    ``anchor_sparsity_ratio``, ``positive_*`` and ``negative_*``."""

    sparsity_roles = ("anchor", "positive", "negative")

    def __init__(self, *args: Any, max_active_dims: int | None = None, **kwargs: Any) -> None:
        self._sparse_setup(max_active_dims, kwargs.get("truncate_dim"))
        super().__init__(*args, **kwargs)

    def _role(self, encode_fn_name: str | None) -> str:
        return self.sparsity_roles[min(self._calls, 2)]  # the dense evaluator embeds in this order


class SparseTranslationEvaluator(SparseEvaluatorMixin, TranslationEvaluator):
    """:class:`~sentencekit.evaluation.TranslationEvaluator` for sparse encoders plus ``active_dims`` and
    ``sparsity_ratio`` (over source and target sentences)."""

    def __init__(self, *args: Any, max_active_dims: int | None = None, **kwargs: Any) -> None:
        self._sparse_setup(max_active_dims, kwargs.get("truncate_dim"))
        super().__init__(*args, **kwargs)


class SparseMSEEvaluator(SparseEvaluatorMixin, MSEEvaluator):
    """:class:`~sentencekit.evaluation.MSEEvaluator` for sparse encoders (the teacher: a ``SparseEncoder``
    or a dense model of the same width) plus the student's ``active_dims`` and ``sparsity_ratio``."""

    def __init__(self, *args: Any, max_active_dims: int | None = None, **kwargs: Any) -> None:
        self._sparse_setup(max_active_dims, kwargs.get("truncate_dim"))
        super().__init__(*args, **kwargs)


__all__ = ["SparseEvaluatorMixin", "SparseInformationRetrievalEvaluator", "SparseRerankingEvaluator",
           "SparseEmbeddingSimilarityEvaluator", "SparseBinaryClassificationEvaluator", "SparseTripletEvaluator",
           "SparseTranslationEvaluator", "SparseMSEEvaluator"]
