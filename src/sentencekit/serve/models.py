"""The served models: loading (torch or ONNX backend), what ``/info`` reports about them, and the batch
functions the batchers run on their inference thread (embed, rerank, sparse embed).

A server has a dense embedder (``--model``), a sparse encoder (``--sparse-model``, TEI's ``/embed_sparse``), or
both, and optionally a reranker. A ``--model`` folder saved as a ``SparseEncoder`` is served as the sparse
encoder alone (the dense routes then answer 424, as TEI answers a route its model type does not serve).
The reranker (``--reranker``) is a cross-encoder, or a multi-vector (ColBERT) model: ``/rerank`` and
``/v1/rerank`` then score each document by late interaction (MaxSim of the query's and the document's token
vectors, each encoded on its own with its query / document prompt and length).

>>> models = load_models(ServeConfig(model="sentence-transformers/all-MiniLM-L6-v2"))   # doctest: +SKIP
>>> models.embedder.dimension, models.embedder.max_length                              # doctest: +SKIP
(384, 256)
"""

from __future__ import annotations

import functools
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentencekit.pipeline.batching import TruncationWarning
from sentencekit.serve.server_config import ServeConfig
from sentencekit.serve.tokens import TokenCounter


def _identity(scores: Any) -> Any:
    return scores  # raw_scores: logits without the model's activation (works on tensors and arrays)


@dataclass
class ServedModel:
    """One loaded model with its token counter and what clients see of it."""

    model: Any
    name: str
    source: str
    backend: str
    tokens: TokenCounter
    kind: str  # "embedder", "reranker", "late_interaction" (a multi-vector reranker) or "sparse"

    @property
    def max_length(self) -> int | None:
        return self.tokens.max_length

    @functools.cached_property  # the model does not change while served: decided once, not per request
    def takes_counted_ids(self) -> bool:
        """Whether the ids the token counter computes (with special tokens) are exactly the model's input,
        so requests run on them without being tokenized again: ONNX Runtime and torch transformer models
        (not static-embedding models, which tokenize without special tokens, nor Router models, whose route
        decides the tokenizer)."""
        engine = self.model.engine
        if self.kind != "embedder" or engine.routes or engine.backend not in ("torch", "onnx", "openvino"):
            return False
        if engine.message_format is not None:  # the model reads the chat template's rows (chat_rows), not these
            return False
        if engine.backend in ("onnx", "openvino"):  # one tokenizer (FastTokenizer) for both runtimes
            return True
        from sentencekit.modules import Transformer

        first = self.model[0]
        return isinstance(first, Transformer) and bool(getattr(first.tokenizer, "is_fast", False))

    @property
    def dimension(self) -> int | None:
        # a sparse encoder's dimension is its vocabulary size: the range of /embed_sparse's "index"
        dim = self.model.get_sentence_embedding_dimension() if self.kind in ("embedder", "sparse") else None
        return int(dim) if dim is not None else None

    @property
    def on_cpu(self) -> bool:
        return str(getattr(self.model, "device", "cpu")).startswith("cpu")

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model_id": self.name, "source": self.source, "backend": self.backend,
                               "max_input_length": self.max_length,
                               "compute_dtype": getattr(self.model, "compute_dtype", None),
                               "device": str(getattr(self.model, "device", "cpu"))}
        if self.kind in ("embedder", "sparse"):
            out.update(dimension=self.dimension, similarity_fn_name=self.model.similarity_fn_name,
                       prompts=sorted(k for k, v in self.model.prompts.items() if v),
                       default_prompt_name=self.model.default_prompt_name)
        if self.kind == "sparse":
            out.update(max_active_dims=self.model.max_active_dims, route="/embed_sparse")
        if self.kind == "late_interaction":
            out.update(scoring="late interaction", similarity_fn_name=self.model.similarity_fn_name)
        return out

    def _batch_kwargs(self, n: int, max_batch_tokens: int) -> dict[str, Any]:
        # CPUs: the library's own measured batching (batch_size * batch_tokens_per_text padded tokens).
        # GPUs: one forward pass may hold the whole token budget.
        if self.on_cpu:
            return {"batch_size": 32}
        return {"batch_size": max(1, n), "max_batch_tokens": max_batch_tokens}

    def _call(self, method: str, items: list[Any], max_batch_tokens: int, **kwargs: Any) -> np.ndarray:
        """``model.encode`` / ``model.predict`` of one batch (inference thread), as float32.

        The server has already answered for truncation before the batch ran (413 with ``truncate=false``;
        ``usage`` counts the tokens the model reads), so the library's per-call ``TruncationWarning``
        would only repeat that into the log. It is ignored around this call alone: the filters are the
        process's again as soon as the call returns, and ``encode`` calls anywhere else keep warning.
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncationWarning)
            n = len(items.lengths) if hasattr(items, "lengths") else len(items)
            out = getattr(self.model, method)(items, show_progress_bar=False, convert_to_numpy=True, **kwargs,
                                              **self._batch_kwargs(n, max_batch_tokens))
        return np.asarray(out, dtype=np.float32)

    def run_embed(self, key: str | tuple[str, bool], items: list[Any], max_batch_tokens: int) -> np.ndarray:
        """Embeddings ``[n, dim]`` (float32) of ``items`` (inference thread). ``key`` is the prompt, or
        ``(prompt, True)`` when ``items`` are the counter's token ids of prompt + text (run as they are:
        :class:`~sentencekit.engines.protocol.Tokenized`), ``(prompt, False)`` for texts."""
        prompt, counted = key if isinstance(key, tuple) else (key, False)
        if counted:
            from sentencekit.engines.protocol import Tokenized

            items = Tokenized.from_ids(items)
        return self._call("encode", items, max_batch_tokens, prompt=prompt)

    def chat_rows(self, items: list[Any], prompt: str) -> Any:
        """The model's own token rows of ``items`` (texts, or ``(query, document)`` pairs) with ``prompt``, when it
        renders inputs through a chat template: a :class:`~sentencekit.engines.protocol.Tokenized` (lengths as the
        model reads them, cut at its limit; ``truncated`` per row). ``None`` for models that tokenize the bare
        text, which :class:`~sentencekit.serve.tokens.TokenCounter` counts. Tokenizes through the engine (under
        its tokenizer lock), so the rows are exactly what the model runs."""
        from sentencekit.pipeline.prompts import prompted_inputs

        engine = self.model.engine
        if engine.message_format is None or self.kind not in ("embedder", "reranker"):
            return None
        return engine.tokenize(prompted_inputs(list(items), prompt or None, engine.message_format))

    def run_sparse(self, prompt: str, texts: list[str], max_batch_tokens: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Sparse embeddings of ``texts`` with ``prompt`` (inference thread): per text its non-zero ``(indices
        ascending, values)`` (:func:`sentencekit.sparse_formats.row_entries`, whatever form the engine returns).
        The ``TruncationWarning`` is ignored around this call alone, as in :meth:`_call`."""
        from sentencekit.sparse_formats import row_entries

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncationWarning)
            out = self.model.encode(list(texts), prompt=prompt, show_progress_bar=False, save_to_cpu=True,
                                    **self._batch_kwargs(len(texts), max_batch_tokens))
        return row_entries(out, len(texts))

    def run_rerank(self, key: bool | tuple[bool, bool], pairs: list[Any], max_batch_tokens: int) -> np.ndarray:
        """Scores ``[n]`` of ``(query, document)`` pairs (inference thread). ``key`` is ``raw_scores``, or
        ``(raw_scores, True)`` when ``pairs`` are the model's own token rows (:meth:`chat_rows`), run as they are.
        A multi-vector reranker encodes each distinct query once and each document once, and scores the pairs
        with its similarity (MaxSim or MeanMaxSim; :meth:`MultiVectorEncoder.predict`)."""
        raw_scores, counted = key if isinstance(key, tuple) else (key, False)
        n = len(pairs)
        if counted:
            from sentencekit.engines.protocol import Tokenized

            pairs = Tokenized.from_ids(pairs)
        # MultiVectorEncoder.predict scores by MaxSim: there is no activation to leave out
        activation = {} if self.kind == "late_interaction" else {"activation_fn": _identity if raw_scores else None}
        scores = self._call("predict", pairs, max_batch_tokens, **activation)
        return scores.reshape(n)

@dataclass
class ServedModels:
    """What one server serves: an embedder and / or a sparse encoder (at least one), and maybe a reranker."""

    embedder: ServedModel | None
    reranker: ServedModel | None
    sparse: ServedModel | None = None

    @property
    def primary(self) -> ServedModel:
        """The model ``/info`` names first and whose tokenizer ``/tokenize`` and ``/decode`` use: the embedder,
        else the sparse encoder."""
        primary = self.embedder or self.sparse
        if primary is None:  # load_models never builds this
            raise ValueError("a server needs an embedding model or a sparse encoder")
        return primary

    def describe(self) -> str:
        parts = []
        if self.embedder is not None:
            parts.append(f"{self.embedder.name} ({self.embedder.backend}, {self.embedder.dimension} dims)")
        if self.sparse is not None:
            parts.append(f"sparse encoder {self.sparse.name} ({self.sparse.backend}, {self.sparse.dimension} terms)")
        if self.reranker is not None:
            parts.append(f"reranker {self.reranker.name}")
        return " + ".join(parts)


def _served_name(source: str) -> str:
    """A folder is served under its name (its parent's for a generic ``model`` sub-folder), an id as is."""
    path = Path(source)
    if not path.exists():
        return source
    path = path.resolve()
    return path.parent.name if path.name == "model" and path.parent.name else path.name


def preferred_backend(config: ServeConfig) -> str:
    """The backend to try first: ``--backend`` as given, or for ``auto`` the registry's choice
    (:func:`sentencekit.engines.choose_backend`: ONNX Runtime on CPUs in float32/int8, torch otherwise)."""
    from sentencekit.engines import choose_backend

    return choose_backend(config.backend, device=config.device, compute_dtype=config.compute_dtype)


def _load(cls: Any, name: str, config: ServeConfig, common: dict[str, Any], what: str) -> tuple[Any, str]:
    """``cls(name)`` on the preferred backend; with ``--backend auto`` a model the ONNX backend cannot run
    (a pipeline it cannot export, e.g. Router or static embeddings) is served on torch instead."""
    from sentencekit.engines import load_on_backend

    return load_on_backend(cls, name, config.backend, what=what, **common)


def is_sparse_encoder(name: str, *, local_files_only: bool = False) -> bool:
    """Whether ``name`` resolves to a folder saved as a ``SparseEncoder`` (``config_sentence_transformers.json``
    ``model_type``, or a module only sparse encoders have). A plain ``*ForMaskedLM`` folder is not: it may as
    well be served as a dense embedder (``--sparse-model`` serves it as SPLADE). ``False`` when it does not
    resolve (the loader then says why)."""
    spec = _spec(name, local_files_only=local_files_only)
    return spec is not None and spec.is_sparse


def _spec(name: str, *, local_files_only: bool) -> Any:
    """The spec of the folder ``name`` resolves to; ``None`` when it does not resolve (the loader says why)."""
    from sentencekit.hub import resolve_model
    from sentencekit.spec.model_spec import read_spec

    try:
        return read_spec(resolve_model(name, local_files_only=local_files_only).path)
    except (OSError, ValueError):
        return None


def masked_lm_note(name: str, *, local_files_only: bool = False) -> str | None:
    """A note for ``--model`` naming a plain ``*ForMaskedLM`` folder (no sentence-transformers config): it is
    served as a dense embedder with mean pooling, as sentence-transformers would load it, though it may be a
    SPLADE model (``SparseEncoder`` loads the same folder as one); ``None`` otherwise."""
    spec = _spec(name, local_files_only=local_files_only)
    if spec is None or spec.layout != "transformers" or not spec.is_masked_lm:
        return None
    return (f"{name} is a masked-language model without a sentence-transformers config: serving it as a dense "
            "embedder (mean pooling). If it is a SPLADE model, serve it with --sparse-model instead (/embed_sparse)")


def load_models(config: ServeConfig) -> ServedModels:
    """Load the embedder, sparse encoder and reranker that ``config`` names (``--model`` saved as a
    SparseEncoder: that sparse encoder alone); raises ``OSError`` / ``ValueError`` with the loader's message
    when one cannot be loaded."""
    from sentencekit.families.embedder import SentenceTransformer
    from sentencekit.families.reranker import CrossEncoder
    from sentencekit.families.sparse import SparseEncoder

    common = {"device": config.device, "local_files_only": config.local_files_only,
              "num_threads": config.threads, "compute_dtype": config.compute_dtype}
    dense_name, sparse_name = config.model, config.sparse_model
    if is_sparse_encoder(config.model, local_files_only=config.local_files_only):
        if config.sparse_model:
            raise ValueError(f"--model {config.model} is a sparse encoder, and --sparse-model names another; serve "
                             "a dense embedding model as --model beside --sparse-model, or the sparse encoder alone "
                             "as --model")
        dense_name, sparse_name = None, config.model
    for option, name in (("--model", dense_name), ("--sparse-model", sparse_name)):
        spec = _spec(name, local_files_only=config.local_files_only) if name is not None else None
        if spec is not None and spec.is_multivector:
            raise ValueError(f"{option} {name} is a multi-vector (ColBERT-style) model: it gives one vector per "
                             "token, which no embedding route can return. Serve it as --reranker: /rerank and "
                             "/v1/rerank then score documents by late interaction (MaxSim).")
    embedder = sparse = None
    if dense_name is not None:
        note = masked_lm_note(dense_name, local_files_only=config.local_files_only)
        if note:
            print(f"sentencekit serve: note: {note}", file=sys.stderr, flush=True)
        model, backend = _load(SentenceTransformer, dense_name, config, common, "model")
        embedder = ServedModel(model, config.served_model_name or _served_name(dense_name), dense_name,
                               backend, TokenCounter.for_model(model), "embedder")
    if sparse_name is not None:
        model, backend = _load(SparseEncoder, sparse_name, config, common, "sparse model")
        name = config.served_model_name if embedder is None and config.served_model_name else _served_name(sparse_name)
        sparse = ServedModel(model, name, sparse_name, backend, TokenCounter.for_model(model), "sparse")
    reranker = None
    reranker_spec = _spec(config.reranker, local_files_only=config.local_files_only) if config.reranker else None
    if reranker_spec is not None and reranker_spec.is_multivector:
        from sentencekit.families.multivector import MultiVectorEncoder

        mv, mv_backend = _load(MultiVectorEncoder, config.reranker, config, common, "reranker")
        # documents are what a request may cut: count against the document length
        tokens = TokenCounter.for_model(mv, max_length=mv.engine.max_seq_length_for("document"))
        reranker = ServedModel(mv, _served_name(config.reranker), config.reranker, mv_backend, tokens,
                               "late_interaction")
    elif config.reranker:
        ce, ce_backend = _load(CrossEncoder, config.reranker, config, common, "reranker")
        if getattr(ce, "num_labels", 1) != 1:
            raise ValueError(f"--reranker {config.reranker}: this cross-encoder has {ce.num_labels} labels; "
                             "reranking needs a model with one relevance score.")
        if getattr(ce, "untrained_head", None):  # refuse at start-up, not on every /rerank request
            raise ValueError(f"--reranker {config.reranker}: {ce.untrained_head}; its classification head is "
                             "untrained, so its scores would mean nothing. Serve a trained reranker (train one "
                             "with CrossEncoderTrainer).")
        reranker = ServedModel(ce, _served_name(config.reranker), config.reranker, ce_backend,
                               TokenCounter.for_model(ce), "reranker")
    return ServedModels(embedder, reranker, sparse)
