"""The user-facing layer both backends share: what ``SentenceTransformer`` and ``CrossEncoder`` offer
besides running the network, written once for the torch classes (``sentencekit.embedder`` /
``sentencekit.reranker``) and the ONNX Runtime classes (``sentencekit.runtime``).

- :class:`EmbedderAPI`: prompts and their defaults, the similarity function, Matryoshka
  ``truncate_dim`` and the dimension it gives, ``encode_query`` / ``encode_document``, the last
  call's truncation report;
- :class:`RerankerAPI`: ``max_length``, ``rank``, the last call's truncation report;
- both: the multi-process pool (``start_multi_process_pool`` / ``encode(..., pool=pool)``).

A class using them provides ``encode`` / ``predict``, ``_full_dimension()`` and ``last_info``.
Nothing here imports torch.

>>> from sentencekit import SentenceTransformer
>>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2", backend="onnx")  # doctest: +SKIP
>>> model.encode_query(["refund?"]).shape, model.get_sentence_embedding_dimension()      # doctest: +SKIP
((1, 384), 384)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sentencekit.batching import EncodeInfo, as_input_list
from sentencekit.output import check_truncate_dim
from sentencekit.similarity import check_similarity_fn_name

DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")


F = TypeVar("F", bound=Callable[..., Any])


def wants_pool(pool: Any, device: Any) -> bool:
    """Whether a call goes through worker processes: a pool was given, or a list of devices."""
    return pool is not None or (isinstance(device, list) and bool(device))


def pool_aware(method: F) -> F:
    """Make ``encode`` / ``predict`` run through worker processes when called with ``pool=...`` (or
    ``device=[...]``): the call's own arguments go to ``sentencekit.parallel`` unchanged, so every model
    class gets the multi-process path from this one place.

    >>> class Model:
    ...     @pool_aware
    ...     def encode(self, sentences, batch_size=32, device=None, pool=None, chunk_size=None):
    ...         return "one process"
    >>> Model().encode(["a"])
    'one process'
    """
    signature = inspect.signature(method)
    params = list(signature.parameters.values())
    first = params[1].name  # the inputs, after self
    var_keyword = next((p.name for p in params if p.kind is inspect.Parameter.VAR_KEYWORD), None)

    # positional slots (after self) from which pool/device could be passed positionally
    positional = min((i - 1 for i, p in enumerate(params) if p.name in ("pool", "device")), default=len(params))

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) <= positional and not wants_pool(kwargs.get("pool"), kwargs.get("device")):
            return method(self, *args, **kwargs)  # the common call: no binding on the hot path
        bound = signature.bind(self, *args, **kwargs)
        arguments = dict(bound.arguments)
        if not wants_pool(arguments.get("pool"), arguments.get("device")):
            return method(self, *args, **kwargs)
        from sentencekit.parallel import model_api

        arguments.pop(params[0].name)
        inputs = arguments.pop(first)
        extra = arguments.pop(var_keyword, {}) if var_keyword else {}
        arguments.setdefault("pool", None)
        run = model_api.encode_with_pool if method.__name__ == "encode" else model_api.predict_with_pool
        return run(self, inputs, **arguments, **extra)

    return wrapper  # type: ignore[return-value]


class PoolAPI:
    """``start_multi_process_pool`` / ``stop_multi_process_pool`` (the logic is in ``sentencekit.parallel``)."""

    def start_multi_process_pool(self, target_devices: list[str] | None = None, *,
                                 threads_per_worker: int | None = None) -> Any:
        """Start worker processes that each hold this model, for ``encode(..., pool=pool)`` /
        ``predict(..., pool=pool)``.

        ``target_devices=None``: every CUDA device, else ``min(4, cores)`` CPU workers, each with
        ``cores // workers`` threads. Use it as a context manager, or stop it with
        :meth:`stop_multi_process_pool`.

        >>> with model.start_multi_process_pool(["cpu", "cpu"]) as pool:   # doctest: +SKIP
        ...     emb = model.encode(texts, pool=pool, chunk_size=500)
        """
        from sentencekit.parallel import start_multi_process_pool

        return start_multi_process_pool(self, target_devices, threads_per_worker=threads_per_worker)

    @staticmethod
    def stop_multi_process_pool(pool: Any) -> None:
        """Stop a pool from :meth:`start_multi_process_pool` (safe after a worker died)."""
        from sentencekit.parallel import stop_multi_process_pool

        stop_multi_process_pool(pool)


class EmbedderAPI(PoolAPI):
    """Prompts, similarity, dimensions and the query/document helpers of an embedder."""

    prompts: dict[str, str]
    default_prompt_name: str | None
    truncate_dim: int | None
    _similarity_fn_name: str | None

    def _init_settings(self, saved: dict[str, Any], *, prompts: dict[str, str] | None,
                       default_prompt_name: str | None, similarity_fn_name: str | None,
                       truncate_dim: int | None) -> None:
        """Settings from the constructor, falling back to the saved model config (``saved``): saved prompts
        fill only the keys the user left unset, as in sentence-transformers."""
        self.prompts = {"query": "", "document": "",
                        **{k: v for k, v in (saved.get("prompts") or {}).items() if v is not None},
                        **(prompts or {})}
        self.default_prompt_name = default_prompt_name or saved.get("default_prompt_name")
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise ValueError(f"default_prompt_name {self.default_prompt_name!r} is not one of the prompts "
                             f"{sorted(self.prompts)}.")
        fn_name = similarity_fn_name or saved.get("similarity_fn_name")
        self._similarity_fn_name = check_similarity_fn_name(fn_name) if fn_name else None
        self.truncate_dim = truncate_dim if truncate_dim is not None else saved.get("truncate_dim")
        check_truncate_dim(self.truncate_dim, self._full_dimension())
        self._prompt_lengths: dict[str, int] = {}

    def _full_dimension(self) -> int | None:
        raise NotImplementedError

    @property
    def similarity_fn_name(self) -> str:
        """The similarity ``similarity()`` uses: the saved or given one, else cosine (then recorded, so a
        saved model names it)."""
        if self._similarity_fn_name is None:
            self._similarity_fn_name = "cosine"
        return self._similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, value: str) -> None:
        self._similarity_fn_name = check_similarity_fn_name(value)

    @property
    def last_encode_info(self) -> EncodeInfo:
        """Truncation report of the last ``encode`` call made by this thread."""
        return self.last_info

    def get_sentence_embedding_dimension(self) -> int | None:
        """Dimension of the embeddings ``encode`` returns (``truncate_dim`` applied)."""
        dim = self._full_dimension()
        if dim is not None and self.truncate_dim is not None:
            return min(dim, self.truncate_dim)
        return dim

    get_embedding_dimension = get_sentence_embedding_dimension

    def encode_query(self, sentences: Any, prompt_name: str | None = None, **kwargs: Any) -> Any:
        """``encode`` for search queries: the ``query`` prompt (if the model has one) and the ``query``
        route of Router models."""
        if prompt_name is None and kwargs.get("prompt") is None and "query" in self.prompts:
            prompt_name = "query"
        self._set_task(kwargs, "query")
        return self.encode(sentences, prompt_name=prompt_name, **kwargs)

    def encode_document(self, sentences: Any, prompt_name: str | None = None, **kwargs: Any) -> Any:
        """``encode`` for documents: the first of the ``document`` / ``passage`` / ``corpus`` prompts the
        model has, and the ``document`` route of Router models."""
        if prompt_name is None and kwargs.get("prompt") is None:
            prompt_name = next((n for n in DOCUMENT_PROMPT_NAMES if n in self.prompts), None)
        self._set_task(kwargs, "document")
        return self.encode(sentences, prompt_name=prompt_name, **kwargs)

    def _set_task(self, kwargs: dict[str, Any], task: str) -> None:
        """Pick a route for Router models (models without routes ignore it)."""

    def encode(self, sentences: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


class RerankerAPI(PoolAPI):
    """``max_length`` and ``rank`` of a cross-encoder, on top of its ``predict``."""

    max_seq_length: int | None
    num_labels: int

    @property
    def max_length(self) -> int | None:
        """Longest (query, document) pair in tokens; longer pairs are cut and reported."""
        return self.max_seq_length

    @max_length.setter
    def max_length(self, value: int) -> None:
        self.max_seq_length = value

    @property
    def last_predict_info(self) -> EncodeInfo:
        """Truncation report of the last ``predict`` call made by this thread."""
        return self.last_info

    def predict(self, sentences: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: int | None = None,
        return_documents: bool = False,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: Any = None,
        apply_softmax: bool = False,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | None = None,
        max_batch_tokens: int | None = None,
    ) -> list[dict[str, Any]]:
        """Score ``documents`` against ``query``; best first: ``[{"corpus_id", "score"(, "text")}]``.
        (``convert_to_numpy`` / ``convert_to_tensor`` are accepted for compatibility: scores are floats.)

        >>> model.rank("How do I get a refund?", docs, top_k=3, return_documents=True)  # doctest: +SKIP
        [{'corpus_id': 2, 'score': 0.97, 'text': 'Refunds are paid within 5 days.'}, ...]
        """
        if self.num_labels != 1:
            raise ValueError(f"rank() needs a model with one output score; this one has num_labels="
                             f"{self.num_labels}. Use predict() and pick the label you need.")
        if not isinstance(query, str):
            raise TypeError(f"query must be a string, got {type(query).__name__}")
        if isinstance(documents, str):
            raise TypeError("documents must be a list of strings, not a single string.")
        docs, _ = as_input_list(documents, what="documents")
        if top_k is not None and top_k <= 0:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        scores = self.predict([(query, d) for d in docs], batch_size=batch_size,
                              show_progress_bar=show_progress_bar, activation_fn=activation_fn,
                              apply_softmax=apply_softmax, convert_to_numpy=True, device=device,
                              max_batch_tokens=max_batch_tokens)
        results = [{"corpus_id": i, "score": float(s)} for i, s in enumerate(scores.reshape(-1).tolist())]
        if return_documents:
            for r in results:
                r["text"] = docs[r["corpus_id"]]
        results.sort(key=lambda r: r["score"], reverse=True)
        return results[:top_k] if top_k is not None else results


__all__ = ["EmbedderAPI", "RerankerAPI", "PoolAPI", "pool_aware", "wants_pool", "DOCUMENT_PROMPT_NAMES"]
