"""What the ONNX-backed embedder and reranker share: finding the model folder, the session, the
tokenizer, thread control, token-budget batching and the truncation report. Torch-free."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sentencekit._warnings import external_stacklevel
from sentencekit.batching import EncodeInfo, plan_batches, report_truncation, resolve_batching
from sentencekit.files import read_json_if_exists
from sentencekit.prompts import apply_prompt
from sentencekit.runtime.session import make_session, read_metadata
from sentencekit.runtime.tokenizer import Encoded, FastTokenizer

logger = logging.getLogger(__name__)

COMPUTE_DTYPES = ("auto", "float32", "int8", "bfloat16")
_DTYPE_ALIASES = {"fp32": "float32", "float": "float32", "qint8": "int8", "bf16": "bfloat16", None: "auto"}


def check_compute_dtype(value: str | None) -> str:
    value = _DTYPE_ALIASES.get(value, value)
    if value not in COMPUTE_DTYPES:
        raise ValueError(f"Unknown compute_dtype {value!r}; choose from {', '.join(COMPUTE_DTYPES)}.")
    return value


def check_cpu_device(device: str | None) -> None:
    if device is not None and str(device) != "cpu":
        raise ValueError(f"The ONNX backend runs on the CPU; got device={device!r}. Use backend='torch' for "
                         "GPUs.")


def resolve_folder(model_name_or_path: str | os.PathLike, *, cache_folder: str | None, revision: str | None,
                   token: bool | str | None, local_files_only: bool) -> Path:
    from sentencekit.hub import resolve_model

    return resolve_model(model_name_or_path, cache_folder=cache_folder, revision=revision, token=token,
                         local_files_only=local_files_only).path


def default_max_length(folder: Path) -> int | None:
    """What sentencekit's Transformer module uses when no max_seq_length is saved: the smaller of the
    position embeddings and the tokenizer's model_max_length."""
    config = read_json_if_exists(folder / "config.json") or {}
    tconf = read_json_if_exists(folder / "tokenizer_config.json") or {}
    limits = [config.get("max_position_embeddings"), tconf.get("model_max_length")]
    limits = [int(x) for x in limits if isinstance(x, (int, float)) and 0 < x < 1_000_000]
    return min(limits) if limits else None


class OnnxBase:
    """Shared machinery of :class:`OnnxSentenceTransformer` and :class:`OnnxCrossEncoder`."""

    backend = "onnx"
    _info_attribute = "last_info"
    #: padded tokens per text of ``batch_size`` a batch may hold without ``max_batch_tokens`` (see
    #: :func:`sentencekit.batching.resolve_batching`); 32 measured best for ONNX Runtime on 2 CPU cores
    batch_tokens_per_text: int | None = 32

    def _open(self, graph: Path, num_threads: int | None) -> None:
        """Start the session on ``graph`` and read its metadata (the tokenizer comes next)."""
        self.onnx_path = Path(graph)
        self._session = make_session(self.onnx_path, num_threads)
        self.meta = read_metadata(self._session)
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._local = threading.local()

    def _open_tokenizer(self, tokenizer_json: Path, config_folder: Path, max_length: int | None,
                        do_lower_case: bool) -> None:
        """The tokenizer, with the exported settings (max length, lower-casing, pad token) winning over
        the folder's when the graph carries them."""
        meta = self.meta
        self._tokenizer_json = Path(tokenizer_json)
        self._tokenizer = FastTokenizer.from_file(
            tokenizer_json, config_folder, max_length=meta.get("max_seq_length", max_length),
            do_lower_case=meta.get("do_lower_case", do_lower_case))
        if "pad_id" in meta:
            self._tokenizer.pad_id = int(meta["pad_id"])
            self._tokenizer.padding_side = meta.get("padding_side", "right")

    def fingerprint(self) -> str:
        """The model's identity as :class:`~sentencekit.EmbeddingIndex` records it. A float32 sentencekit
        export gives the fingerprint of the torch model it came from (same embeddings, so an index built
        on either backend opens on the other); an int8 graph or a foreign (transformer-only) export is
        identified by its own bytes and the model folder.

        >>> onnx_fp = SentenceTransformer("my-model", backend="onnx").fingerprint()  # doctest: +SKIP
        >>> onnx_fp == model_fingerprint(SentenceTransformer("my-model"))             # doctest: +SKIP
        True
        """
        from sentencekit.fingerprint import derived_fingerprint, file_fingerprint

        base = self.meta.get("fingerprint")
        if base is not None and "quantization" not in self.meta:
            changed = self.max_seq_length != self.meta.get("max_seq_length")
            return derived_fingerprint(base, *([f"max_seq_length={self.max_seq_length}"] if changed else []))
        if getattr(self, "_own_fingerprint", None) is None:
            from sentencekit.runtime.folder import folder_key

            folder = getattr(self, "model_folder", None)
            self._own_fingerprint = file_fingerprint(
                "onnx", self.meta, folder_key(folder) if folder is not None else None,
                files=(self.onnx_path, self._tokenizer_json))
        return derived_fingerprint(self._own_fingerprint, f"max_seq_length={self.max_seq_length}")

    # -- properties -----------------------------------------------------------------------------------
    @property
    def device(self) -> str:
        return "cpu"

    @property
    def tokenizer(self) -> FastTokenizer:
        return self._tokenizer

    @property
    def session(self) -> Any:
        """The ``onnxruntime.InferenceSession``."""
        return self._session

    @property
    def num_threads(self) -> int:
        """Intra-op threads of the ONNX Runtime session; setting it rebuilds the session."""
        return int(self._session.get_session_options().intra_op_num_threads)

    @num_threads.setter
    def num_threads(self, value: int | None) -> None:
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise ValueError(f"num_threads must be a positive integer or None, got {value!r}")
        self._num_threads = value
        self._session = make_session(self.onnx_path, value)

    @property
    def max_seq_length(self) -> int | None:
        return self._tokenizer.max_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"max_seq_length must be a positive integer, got {value!r}")
        limit = self.meta.get("max_position_embeddings")
        if limit is not None and value > limit:
            raise ValueError(f"max_seq_length={value} exceeds the model's {limit} position embeddings.")
        self._tokenizer.set_max_length(value)

    @property
    def last_info(self) -> EncodeInfo:
        """Truncation report of the last call made by this thread."""
        return getattr(self._local, "info", EncodeInfo())

    # -- batching -------------------------------------------------------------------------------------
    def _run(self, items: Sequence[Any], run_batch: Callable[[dict[str, np.ndarray], np.ndarray], None], *,
             batch_size: int, max_batch_tokens: int | None, show_progress_bar: bool | None,
             prompt: str | None = None) -> Encoded:
        """Tokenize every input once, cut batches by token length and budget, pad and call
        ``run_batch(features, indices)`` per batch (it stores its own results)."""
        if show_progress_bar is None:
            show_progress_bar = logging.getLogger("sentencekit").getEffectiveLevel() <= logging.INFO
        count, budget = resolve_batching(batch_size, max_batch_tokens, self.batch_tokens_per_text)
        enc = self._tokenizer.encode([apply_prompt(prompt, item) for item in items])
        batches: Any = plan_batches(enc.lengths, count, budget) if len(items) else []
        if show_progress_bar:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="Batches", total=len(batches))
        for idx in batches:
            features = self._tokenizer.pad(enc, idx)
            run_batch({k: v for k, v in features.items() if k in self._inputs}, idx)
        self._local.info = report_truncation(len(items), np.flatnonzero(enc.truncated).tolist(),
                                             self.max_seq_length, self._info_attribute, external_stacklevel() + 1)
        return enc

    def __repr__(self) -> str:
        return f"{type(self).__name__}(onnx={self.onnx_path.name!r}, threads={self.num_threads})"
