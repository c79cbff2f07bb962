"""The served models: loading (torch or ONNX backend), what ``/info`` reports about them, and the two
batch functions the batcher runs on its inference thread.

>>> models = load_models(ServeConfig(model="sentence-transformers/all-MiniLM-L6-v2"))   # doctest: +SKIP
>>> models.embedder.dimension, models.embedder.max_length                              # doctest: +SKIP
(384, 256)
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentencekit.pipeline.batching import TruncationWarning
from sentencekit.serve.config import ServeConfig
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
    kind: str  # "embedder" or "reranker"

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
        if self.kind != "embedder" or engine.routes or engine.backend not in ("torch", "onnx"):
            return False
        if engine.backend == "onnx":
            return True
        from sentencekit.modules import Transformer

        first = self.model[0]
        return isinstance(first, Transformer) and bool(getattr(first.tokenizer, "is_fast", False))

    @property
    def dimension(self) -> int | None:
        dim = self.model.get_sentence_embedding_dimension() if self.kind == "embedder" else None
        return int(dim) if dim is not None else None

    @property
    def on_cpu(self) -> bool:
        return str(getattr(self.model, "device", "cpu")).startswith("cpu")

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model_id": self.name, "source": self.source, "backend": self.backend,
                               "max_input_length": self.max_length,
                               "compute_dtype": getattr(self.model, "compute_dtype", None),
                               "device": str(getattr(self.model, "device", "cpu"))}
        if self.kind == "embedder":
            out.update(dimension=self.dimension, similarity_fn_name=self.model.similarity_fn_name,
                       prompts=sorted(k for k, v in self.model.prompts.items() if v),
                       default_prompt_name=self.model.default_prompt_name)
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

    def run_rerank(self, raw_scores: bool, pairs: list[tuple[str, str]], max_batch_tokens: int) -> np.ndarray:
        """Scores ``[n]`` of ``(query, document)`` pairs (inference thread)."""
        scores = self._call("predict", pairs, max_batch_tokens, activation_fn=_identity if raw_scores else None)
        return scores.reshape(len(pairs))


@dataclass
class ServedModels:
    embedder: ServedModel
    reranker: ServedModel | None

    def describe(self) -> str:
        text = f"{self.embedder.name} ({self.embedder.backend}, {self.embedder.dimension} dims)"
        if self.reranker is not None:
            text += f" + reranker {self.reranker.name}"
        return text


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


def load_models(config: ServeConfig) -> ServedModels:
    """Load the embedder (and reranker) that ``config`` names; raises ``OSError`` / ``ValueError`` with the
    loader's message when one cannot be loaded."""
    from sentencekit.families.embedder import SentenceTransformer
    from sentencekit.families.reranker import CrossEncoder

    common = {"device": config.device, "local_files_only": config.local_files_only,
              "num_threads": config.threads, "compute_dtype": config.compute_dtype}
    model, backend = _load(SentenceTransformer, config.model, config, common, "model")
    embedder = ServedModel(model, config.served_model_name or _served_name(config.model), config.model,
                           backend, TokenCounter.for_model(model), "embedder")
    reranker = None
    if config.reranker:
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
    return ServedModels(embedder, reranker)
