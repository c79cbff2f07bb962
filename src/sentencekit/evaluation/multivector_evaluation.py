"""Evaluators for multi-vector (ColBERT) models, as ``sentence_transformers.multi_vector_encoder.evaluation``
(6.2): each is the dense evaluator (same metrics, names, CSV and primary metric) with the multi-vector
embedding step and MaxSim scoring.

Only two things differ from the dense evaluators: texts go through ``MultiVectorEncoder.encode_query`` /
``encode_document`` (a list of ``[tokens, dim]`` tensors; no ``truncate_dim``: token vectors have no Matryoshka
truncation, so it raises), and scores are the model's ``maxsim`` / ``meanmaxsim``
(:mod:`sentencekit.late_interaction_tensors`) instead of cosine & co. The distillation evaluator (KL divergence
and Spearman correlation against a teacher's scores) is :mod:`sentencekit.evaluation.multivector_distillation`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Literal

import numpy as np
from torch import Tensor

from sentencekit.evaluation.information_retrieval import InformationRetrievalEvaluator, ScoreFunction
from sentencekit.evaluation.reranking import RerankingEvaluator
from sentencekit.evaluation.triplet_evaluator import TripletEvaluator

NO_TRUNCATE_DIM = ("truncate_dim is not supported by the multi-vector evaluators: token vectors have no Matryoshka "
                   "truncation. Leave truncate_dim unset to evaluate at the full dimension.")


def check_no_truncate_dim(truncate_dim: int | None) -> None:
    if truncate_dim is not None:
        raise ValueError(NO_TRUNCATE_DIM)


def similarity_functions(name: str) -> tuple[Callable[..., Tensor], Callable[..., Tensor]]:
    """``(all pairs, pairwise)`` MaxSim functions of a multi-vector similarity name (``ValueError`` for others)."""
    from sentencekit.families.multivector import check_multivector_similarity
    from sentencekit.late_interaction_tensors import SIMILARITIES

    return SIMILARITIES[check_multivector_similarity(name)]


class MultiVectorEvaluatorMixin:
    """The multi-vector embedding step (put it first among the bases, before the dense evaluator)."""

    batch_size: int
    show_progress_bar: bool

    def embed_inputs(self, model: Any, sentences: Sequence[Any],
                     encode_fn_name: Literal["query", "document"] | None = None, **kwargs: Any) -> list[Tensor]:
        """Per-token embeddings (a list of ``[tokens, dim]`` tensors) from ``encode_query`` / ``encode_document``
        (``encode`` without a role) with the evaluator's batch size and progress bar; the dense evaluators'
        ``convert_to_tensor`` / ``convert_to_numpy`` do not apply (rows of different lengths stay a list)."""
        for key in ("convert_to_tensor", "convert_to_numpy", "truncate_dim"):
            kwargs.pop(key, None)
        encode = getattr(model, f"encode_{encode_fn_name}") if encode_fn_name else model.encode
        options = {"batch_size": self.batch_size, "show_progress_bar": self.show_progress_bar, **kwargs}
        return encode(list(sentences), **{k: v for k, v in options.items() if v is not None})


class MultiVectorInformationRetrievalEvaluator(MultiVectorEvaluatorMixin, InformationRetrievalEvaluator):
    """:class:`~sentencekit.evaluation.InformationRetrievalEvaluator` for a ``MultiVectorEncoder``: queries and
    the corpus (``corpus_chunk_size`` documents at a time, 5000 by default) embedded per token and scored by
    the model's similarity (``maxsim`` or ``meanmaxsim``, resolved at the first call), with ``chunk_elements``
    as MaxSim's element budget (``None``: 1e8). ``score_functions``: ``{name: fn(queries, documents) -> [n,
    m]}`` instead. The other arguments and every metric are the dense evaluator's (``maxsim_ndcg@10`` ...).

    Raises ``ValueError`` for ``truncate_dim``, for ``chunk_elements`` together with ``score_functions`` (bind
    it into your function: ``functools.partial(maxsim, chunk_elements=...)``), and for an XTR scorer (its
    global top-k would run per corpus chunk; XTR scores training batches only).

    >>> from sentencekit.evaluation import MultiVectorInformationRetrievalEvaluator
    >>> evaluator = MultiVectorInformationRetrievalEvaluator(
    ...     queries={"q1": "How do I get a refund?"}, corpus={"d1": "Refunds take 5 days.", "d2": "Paris."},
    ...     relevant_docs={"q1": {"d1"}}, name="toy")
    >>> evaluator.primary_metric
    'toy_maxsim_ndcg@10'
    """

    default_score_function = "maxsim"

    def __init__(self, queries: dict[Any, str], corpus: dict[Any, str], relevant_docs: dict[Any, set[Any]], *,
                 corpus_chunk_size: int = 5000, chunk_elements: int | None = None,
                 score_functions: dict[str, ScoreFunction] | None = None, **kwargs: Any) -> None:
        from sentencekit.late_interaction_xtr import is_xtr

        check_no_truncate_dim(kwargs.get("truncate_dim"))
        if score_functions is not None:
            if chunk_elements is not None:
                raise ValueError("chunk_elements sets the budget of the model's own MaxSim; with score_functions it "
                                 "would be ignored. Bind it into your function instead, e.g. "
                                 "functools.partial(maxsim, chunk_elements=...).")
            for name, fn in score_functions.items():
                if is_xtr(fn):
                    raise ValueError(f"score_functions[{name!r}] scores with XTR, whose global top-k would run over "
                                     "each corpus chunk separately (and depends on the batch): use MaxSim here; XTR "
                                     "scores training batches only.")
        self.chunk_elements = chunk_elements
        super().__init__(queries, corpus, relevant_docs, corpus_chunk_size=corpus_chunk_size,
                         score_functions=score_functions, **kwargs)

    def model_score_functions(self, model: Any) -> dict[str, ScoreFunction]:
        """The model's MaxSim (``similarity_fn_name``), with ``chunk_elements`` bound when given."""
        name = model.similarity_fn_name
        fn = similarity_functions(name)[0]
        return {name: partial(fn, chunk_elements=self.chunk_elements) if self.chunk_elements is not None else fn}


class MultiVectorTripletEvaluator(MultiVectorEvaluatorMixin, TripletEvaluator):
    """:class:`~sentencekit.evaluation.TripletEvaluator` for a ``MultiVectorEncoder``: how often
    ``MaxSim(anchor, positive) > MaxSim(anchor, negative) + margin`` (anchors with ``encode_query``, positives and
    negatives with ``encode_document``). Similarities: ``maxsim`` / ``meanmaxsim`` (default: the model's); a
    ``margin`` dict is keyed by them (a number applies to both: MaxSim grows with the query length, MeanMaxSim
    stays within [-1, 1], so they need different margins). Raises ``ValueError`` for ``truncate_dim`` and for
    other similarity names (in ``margin`` too).

    >>> from sentencekit.evaluation import MultiVectorTripletEvaluator
    >>> MultiVectorTripletEvaluator(["q"], ["p"], ["n"], margin={"maxsim": 0.5}, name="toy").primary_metric
    'toy_maxsim_accuracy'
    """

    default_similarity = "maxsim"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        check_no_truncate_dim(kwargs.get("truncate_dim"))
        super().__init__(*args, **kwargs)

    @staticmethod
    def similarity_choices() -> list[str]:
        from sentencekit.spec.multivector_source import SIMILARITY_FN_NAMES

        return list(SIMILARITY_FN_NAMES)

    @staticmethod
    def canonical_similarity(name: Any) -> str:
        from sentencekit.families.multivector import check_multivector_similarity

        return check_multivector_similarity(name)

    @staticmethod
    def pairwise(name: str, a: Any, b: Any) -> np.ndarray:
        return similarity_functions(name)[1](a, b).detach().cpu().numpy()


class MultiVectorRerankingEvaluator(MultiVectorEvaluatorMixin, RerankingEvaluator):
    """:class:`~sentencekit.evaluation.RerankingEvaluator` for a ``MultiVectorEncoder``: each sample's candidates
    (``{"query", "positive": [...], "negative": [...]}``) ranked by the model's similarity (MaxSim) or by
    ``similarity_fct(query, documents)`` (the query as a one-item list of its token matrix, the documents as a
    list; ``[1, n]`` or ``[n]`` scores). Metrics ``map``, ``mrr@{at_k}``, ``ndcg@{at_k}`` (primary).

    >>> from sentencekit.evaluation import MultiVectorRerankingEvaluator
    >>> MultiVectorRerankingEvaluator([{"query": "q", "positive": ["p"], "negative": ["n"]}]).primary_metric
    'ndcg@10'
    """

    def __init__(self, samples: list[dict[str, Any]] | dict[Any, dict[str, Any]], *, at_k: int = 10, name: str = "",
                 write_csv: bool = True, similarity_fct: Callable[[Any, Any], Tensor] | None = None,
                 batch_size: int = 16, show_progress_bar: bool = False, use_batched_encoding: bool = True) -> None:
        super().__init__(samples, at_k=at_k, name=name, write_csv=write_csv, similarity_fct=similarity_fct,
                         batch_size=batch_size, show_progress_bar=show_progress_bar,
                         use_batched_encoding=use_batched_encoding)

    def embed_texts(self, model: Any, texts: list[str], kind: str) -> list[Tensor]:
        return self.embed_inputs(model, texts, kind)

    @staticmethod
    def take_rows(embeddings: list[Tensor], start: int, count: int) -> list[Tensor]:
        return embeddings[start:start + count]

    def scorer(self, model: Any) -> Callable[[Any, Any], Tensor]:
        return self.similarity_fct if self.similarity_fct is not None else model.similarity


__all__ = ["MultiVectorEvaluatorMixin", "MultiVectorInformationRetrievalEvaluator", "MultiVectorTripletEvaluator",
           "MultiVectorRerankingEvaluator", "check_no_truncate_dim", "similarity_functions"]
