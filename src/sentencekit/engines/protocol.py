"""What every engine (torch, ONNX Runtime, NumPy static lookup) offers the one inference pipeline.

An engine turns inputs into tokens once (:meth:`Engine.tokenize` -> :class:`Tokenized`) and runs one batch
of them (:meth:`Engine.run` -> named arrays). Everything else — input checks, prompts, batch planning,
order restoration, truncation reports, ``truncate_dim``, normalization, precision and output types — is
the pipeline's (``sentencekit.pipeline``), written once for all engines. Torch-free.

The named arrays ``run`` returns, each with one row per input of the batch (in the batch's order):

- ``sentence_embedding``: ``[b, dim]`` float (embedders);
- ``token_embeddings``: ``[b, tokens, hidden]`` and ``attention_mask``: ``[b, tokens]`` (when asked for);
- ``scores``: ``[b, num_labels]`` raw logits (cross-encoders);
- ``truncated``: ``[b]`` bool, only from engines that tokenize per batch (see :meth:`Tokenized.deferred`).

Arrays are NumPy arrays, or torch tensors on the torch engine.

Models that take more than text (CLIP: text and images, :attr:`Engine.modalities`) get each modality's inputs
as a separate :class:`Tokenized` whose ``modality`` names it: text is tokenized once up front; images (and any
later media) stay as given (``Tokenized.deferred``), and ``run`` loads them
(:func:`sentencekit.pipeline.modality.load_batch`) and runs the engine's processor for that modality on each
batch, so each input is processed exactly once and a corpus of images is never held decoded in memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from sentencekit.pipeline.batching import text_length


@dataclass
class Tokenized:
    """Inputs tokenized once, unpadded: ``ids[i]`` / ``type_ids[i]`` (int64), ``lengths[i]`` tokens, and
    whether input ``i`` was cut at the length limit.

    An engine whose input module tokenizes only whole batches (custom modules, routers, slow tokenizers)
    returns :meth:`deferred` instead: ``ids`` is ``None``, ``lengths`` are character counts (for sorting)
    and ``run`` tokenizes each batch itself (still once per text) and reports ``truncated``.

    ``modality`` is ``"text"``, or the modality of media inputs (``"image"``): those are always deferred,
    ``items`` hold them as the caller gave them (a PIL image, an array, a path, a data URI), and every
    ``lengths[i]`` is 1, so batches are cut by count in input order, not by token length.
    """

    items: list[Any]
    lengths: np.ndarray
    truncated: np.ndarray
    ids: list[np.ndarray] | None = None
    type_ids: list[np.ndarray] | None = None
    modality: str = "text"

    @classmethod
    def deferred(cls, items: Sequence[Any], modality: str = "text") -> Tokenized:
        if modality == "text":
            lengths = np.fromiter((text_length(x) for x in items), dtype=np.int64, count=len(items))
        else:  # media of one modality are processed to one shape: no length to sort by
            lengths = np.ones(len(items), dtype=np.int64)
        return cls(list(items), lengths, np.zeros(len(items), dtype=bool), modality=modality)

    @classmethod
    def from_ids(cls, ids: Sequence[Sequence[int]]) -> Tokenized:
        """Already-tokenized single-text inputs: each row the ids the model's tokenizer gives for a text,
        special tokens included (``model.tokenizer``), so ``model.encode(Tokenized.from_ids(rows))`` runs
        them without tokenizing again. Token types are all zero. ``encode`` refuses a row longer than the
        model's ``max_seq_length`` (cutting ids would drop the closing special token)."""
        rows = [np.asarray(row, dtype=np.int64).reshape(-1) for row in ids]
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        return cls([None] * len(rows), lengths, np.zeros(len(rows), dtype=bool), rows,
                   [np.zeros_like(r) for r in rows])

    @property
    def is_deferred(self) -> bool:
        return self.ids is None

    def pad(self, indices: Sequence[int], *, pad_id: int, pad_type_id: int = 0,
            padding_side: str = "right") -> dict[str, np.ndarray]:
        """``input_ids``, ``attention_mask``, ``token_type_ids`` (``[b, longest]`` int64) of ``indices``."""
        if self.ids is None or self.type_ids is None:
            raise RuntimeError("These inputs are tokenized per batch by the engine; there is nothing to pad.")
        indices = list(indices)
        width = int(max((self.lengths[i] for i in indices), default=0))
        n = len(indices)
        input_ids = np.full((n, width), pad_id, dtype=np.int64)
        type_ids = np.full((n, width), pad_type_id, dtype=np.int64)
        mask = np.zeros((n, width), dtype=np.int64)
        left = padding_side == "left"
        for row, i in enumerate(indices):
            length = int(self.lengths[i])
            sl = slice(width - length, width) if left else slice(0, length)
            input_ids[row, sl] = self.ids[i]
            type_ids[row, sl] = self.type_ids[i]
            mask[row, sl] = 1
        return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": type_ids}


@dataclass
class EngineOptions:
    """How to build an engine: the constructor arguments of ``SentenceTransformer`` / ``CrossEncoder`` that
    concern running the network (the rest are the model's settings)."""

    device: str | None = None
    trust_remote_code: bool = False
    model_kwargs: dict[str, Any] | None = None
    tokenizer_kwargs: dict[str, Any] | None = None
    config_kwargs: dict[str, Any] | None = None
    num_threads: int | None = None
    compute_dtype: str | None = None
    #: texts (embedders) or pairs (cross-encoders) to calibrate int8 quantization on
    calibration: list[Any] | None = None
    #: cross-encoders only: a new classification head's labels, and a length limit to set after loading
    num_labels: int | None = None
    max_length: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.calibration = check_calibration(self.calibration, self.compute_dtype)

    def torch_kwargs(self, family: str) -> dict[str, Any]:
        """What the torch loader takes (and what decides an ONNX export besides the folder)."""
        kwargs = {"trust_remote_code": self.trust_remote_code, "model_kwargs": self.model_kwargs,
                  "tokenizer_kwargs": self.tokenizer_kwargs, "config_kwargs": self.config_kwargs}
        if family == "reranker":
            kwargs["num_labels"] = self.num_labels
        return kwargs


def check_calibration(items: Any, compute_dtype: str | None) -> list[Any] | None:
    """``calibration_texts`` / ``calibration_pairs`` as a list: texts, or ``(query, passage)`` pairs of texts.
    ``TypeError`` for one string (it would calibrate on its characters) or an item that is neither;
    ``ValueError`` for an empty set (leave it unset for the bundled texts). Warns that a set given without
    ``compute_dtype="int8"`` is not used."""
    if items is None:
        return None
    if isinstance(items, (str, bytes)):
        raise TypeError("calibration_texts / calibration_pairs must be a list of texts (or of (query, passage) "
                        f"pairs), not one {type(items).__name__}: wrap it in a list.")
    items = list(items)
    if not items:
        raise ValueError("The calibration set is empty: leave calibration_texts / calibration_pairs unset to "
                         "calibrate on the bundled texts, or give some.")
    for i, item in enumerate(items):
        pair = isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(x, str) for x in item)
        if not (isinstance(item, str) or pair):
            raise TypeError(f"calibration item {i} is {item!r} ({type(item).__name__}): give texts (str) or "
                            "(query, passage) pairs of texts.")
    if compute_dtype not in ("int8", "qint8"):
        warnings.warn("calibration_texts / calibration_pairs only calibrate compute_dtype='int8' (ONNX Runtime, "
                      "OpenVINO); this model runs without int8, so they are not used.", UserWarning, stacklevel=4)
    return items


class Engine:
    """The engine contract (see the module docstring). Subclasses set :attr:`backend` and implement
    ``tokenize``, ``run`` and the properties; the defaults here fit engines without a length limit."""

    backend: ClassVar[str] = ""
    #: padded tokens per text of ``batch_size`` a batch may hold without ``max_batch_tokens``
    #: (see :func:`sentencekit.pipeline.batching.resolve_batching`); ``None``: ``batch_size`` texts a batch
    #: (of texts up to 512 tokens; longer ones are also cut by attention memory)
    batch_tokens_per_text: int | None = None

    # -- the two steps the pipeline calls ----------------------------------------------------------------
    def tokenize(self, items: list[Any], task: str | None = None) -> Tokenized:
        """Tokenize every input once (no padding)."""
        raise NotImplementedError

    def run(self, tokenized: Tokenized, indices: np.ndarray, *, outputs: frozenset[str], prompt_length: int = 0,
            task: str | None = None, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run the rows ``indices`` of ``tokenized`` as one batch; named arrays in that order."""
        raise NotImplementedError

    #: whether :meth:`tokenize_with` takes a call's ``processing_kwargs`` (6.2's per-call tokenization settings)
    accepts_processing_kwargs: bool = False

    def tokenize_with(self, items: list[Any], processing_kwargs: dict[str, Any], task: str | None = None) -> Tokenized:
        """:meth:`tokenize` with a call's ``processing_kwargs``; engines that do not take them raise ``ValueError``."""
        raise ValueError(f"processing_kwargs per call needs the torch backend; this model runs on {self.backend}.")

    @property
    def message_format(self) -> str | None:
        """``"flat"`` / ``"structured"`` when text inputs are rendered through a chat template (see
        :mod:`sentencekit.pipeline.chat_messages`), else ``None``."""
        return None

    @property
    def modalities(self) -> tuple[str, ...]:
        """The input modalities the model takes (sentence-transformers' names: ``"text"``, ``"image"``, ...), in
        the order its ``modality_config`` lists them; ``("text",)`` for text models."""
        return ("text",)

    def prepare(self, device: Any, kwargs: dict[str, Any]) -> None:
        """Check a call's ``device`` and extra keyword arguments before any work (and move the weights
        when a torch call names another device)."""
        if device is not None and str(device) != "cpu":
            raise ValueError(f"The {self.backend} backend runs on the CPU; got device={device!r}. Use "
                             "backend='torch' for GPUs.")
        unknown = set(kwargs) - {"task"}
        if unknown:
            raise ValueError(f"unexpected keyword argument(s) {sorted(unknown)}.")

    # -- what the model reports ------------------------------------------------------------------------------
    @property
    def max_seq_length(self) -> int | float | None:
        return None

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        raise ValueError(f"The {self.backend} engine has no length limit to set.")

    def dimension(self) -> int | None:
        """Width of ``sentence_embedding`` (embedders)."""
        return None

    def max_seq_length_for(self, task: str | None) -> Any:
        """The length limit inputs of ``task`` are cut at (Router models: the route's)."""
        return self.max_seq_length

    def prompt_length(self, prompt: str, task: str | None = None) -> int:
        """Tokens a prompt adds at the start of an input (for ``Pooling(include_prompt=False)``)."""
        return 0

    @property
    def include_prompt(self) -> bool:
        return True

    @property
    def routes(self) -> tuple[str, ...]:
        """Route names of a Router model (``()`` otherwise): ``encode_query`` picks ``query`` when present."""
        return ()

    @property
    def tokenizer(self) -> Any:
        return None

    @property
    def do_lower_case(self) -> bool:
        """Whether inputs are lower-cased before the tokenizer (a saved Transformer setting)."""
        return False

    @property
    def device(self) -> Any:
        return "cpu"

    @property
    def num_threads(self) -> int | None:
        """CPU threads of the engine's compute; engines whose work is a table lookup (one thread) keep the
        value for API compatibility only."""
        return getattr(self, "_num_threads", None)

    @num_threads.setter
    def num_threads(self, value: int | None) -> None:
        check_num_threads(value)
        self._num_threads = value

    def fingerprint(self) -> str:
        """The model's identity (see :func:`sentencekit.fingerprint.model_fingerprint`)."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.backend


def check_num_threads(value: Any) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
        raise ValueError(f"num_threads must be a positive integer or None, got {value!r}")


__all__ = ["Engine", "EngineOptions", "Tokenized", "check_num_threads"]
