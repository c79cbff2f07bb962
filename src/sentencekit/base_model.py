"""What every model family shares: a sequence of modules passing one ``features`` dict, loaded from a
resolved folder, placed on a device, run over length-sorted batches with a truncation report, and
saved atomically. ``SentenceTransformer`` (embedder.py) and ``CrossEncoder`` (reranker.py) add only
what differs: how a folder becomes modules, and what a batch's output becomes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sentencekit._warnings import external_stacklevel
from sentencekit.batching import EncodeInfo, TruncationWarning, report_truncation, run_sorted_batches
from sentencekit.devices import resolve_device
from sentencekit.files import atomic_directory
from sentencekit.format import is_foreign_entry
from sentencekit.hub import resolve_model
from sentencekit.modules import Router
from sentencekit.prompts import apply_prompt

logger = logging.getLogger(__name__)


__all__ = ["BaseModel", "EncodeInfo", "TruncationWarning"]


class BaseModel(nn.Sequential):
    """A sequence of modules (``features`` dict in, ``features`` dict out) with shared loading,
    batching and saving. Subclasses implement :meth:`_load_folder` and their own inference method."""

    #: the ONNX Runtime class ``backend="onnx"`` builds instead (``"module.Class"``)
    onnx_class_path: str | None = None

    def __new__(cls, *args: Any, backend: str = "torch", **kwargs: Any) -> Any:
        if backend == "onnx" and cls.onnx_class_path:
            import importlib

            module, _, name = cls.onnx_class_path.rpartition(".")
            return getattr(importlib.import_module(module), name)(*args, **kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None,
        modules: list[nn.Module] | OrderedDict | None,
        *,
        device: str | None,
        cache_folder: str | None,
        revision: str | None,
        local_files_only: bool,
        token: bool | str | None,
        load_kwargs: dict[str, Any],
    ) -> None:
        self.model_name_or_path = None if model_name_or_path is None else os.fspath(model_name_or_path)
        self.model_folder: Path | None = None
        saved_config: dict[str, Any] = {}
        module_kwargs: dict[str, list[str]] = {}
        if modules is None and model_name_or_path is not None:
            resolution = resolve_model(model_name_or_path, cache_folder=cache_folder, revision=revision,
                                       token=token, local_files_only=local_files_only)
            self.model_folder = resolution.path
            modules, module_kwargs, saved_config = self._load_folder(resolution.path, **load_kwargs)
        elif modules is None:
            raise ValueError("Pass a model name or path, or a list of modules.")
        if isinstance(modules, (OrderedDict, dict)):
            super().__init__(OrderedDict(modules))
        else:
            super().__init__(*modules)
        self.module_kwargs = module_kwargs
        self.saved_config = saved_config
        self._local = threading.local()
        # All modules share the dtype of the first parameter (e.g. model_kwargs={"torch_dtype": bf16}).
        first = next(self.parameters(), None)
        if first is not None and first.is_floating_point():
            self.to(first.dtype)
        self.to(resolve_device(device))
        self._num_threads: int | None = None

    @classmethod
    def _load_folder(cls, folder: Path, **kwargs: Any) -> tuple[list[nn.Module], dict[str, list[str]], dict]:
        """Modules, per-module forward kwargs and the model-level config of a resolved folder."""
        raise NotImplementedError

    # -- pickling (multi-process pools) -------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_local", None)  # thread-local reports do not travel
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._local = threading.local()

    # -- properties ---------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for p in self.parameters():
            return p.dtype
        return torch.float32

    def _input_module(self) -> nn.Module:
        return self[0]

    @property
    def tokenizer(self) -> Any:
        first = self._input_module()
        if isinstance(first, Router):
            first = next(iter(first.sub_modules.values()))[0]
        return getattr(first, "tokenizer", None)

    @property
    def max_seq_length(self) -> int | None:
        return getattr(self._input_module(), "max_seq_length", None)

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"max_seq_length must be a positive integer, got {value!r}")
        first = self._input_module()
        auto_model = getattr(first, "auto_model", None)
        limit = getattr(getattr(auto_model, "config", None), "max_position_embeddings", None)
        if limit is not None and value > limit:
            raise ValueError(f"max_seq_length={value} exceeds the model's {limit} position embeddings.")
        first.max_seq_length = value

    @property
    def num_threads(self) -> int:
        """CPU threads for inference (``torch.set_num_threads``, which is process-wide in torch)."""
        return getattr(self, "_num_threads", None) or torch.get_num_threads()

    @num_threads.setter
    def num_threads(self, value: int | None) -> None:
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise ValueError(f"num_threads must be a positive integer or None, got {value!r}")
        self._num_threads = value
        if value:
            torch.set_num_threads(value)

    @property
    def batch_tokens_per_text(self) -> int | None:
        """Padded tokens per text of ``batch_size`` that a batch may hold when ``max_batch_tokens`` is not
        given (see :func:`sentencekit.batching.resolve_batching`): on CPUs 32 (128 with bf16 matrix
        products, which gain from bigger batches), measured on all-MiniLM-L6-v2; ``None`` (exactly
        ``batch_size`` texts per batch) on GPUs. Settable."""
        if hasattr(self, "_batch_tokens_per_text"):
            return self._batch_tokens_per_text
        if self.device.type != "cpu":
            return None
        bf16 = getattr(self, "compute_dtype", "float32") == "bfloat16" or self.dtype == torch.bfloat16
        return 128 if bf16 else 32

    @batch_tokens_per_text.setter
    def batch_tokens_per_text(self, value: int | None) -> None:
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise ValueError(f"batch_tokens_per_text must be a positive integer or None, got {value!r}")
        self._batch_tokens_per_text = value

    @property
    def last_info(self) -> EncodeInfo:
        """Truncation report of the last ``encode`` / ``predict`` call made by this thread."""
        return getattr(self._local, "info", EncodeInfo())

    def get_model_kwargs(self) -> set[str]:
        kwargs = set()
        for module in self:
            kwargs |= set(getattr(module, "forward_kwargs", set()))
        for names in self.module_kwargs.values():
            kwargs |= set(names)
        return kwargs

    # -- tokenization and forward -------------------------------------------------------------------
    def tokenize(self, texts: list[Any], **kwargs: Any) -> dict[str, Any]:
        """Tokenize a batch with the model's input module (the first module)."""
        first = self._input_module()
        if isinstance(first, Router):
            return first.tokenize(texts, task=kwargs.get("task"))
        return first.tokenize(texts)

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        for name, module in self.named_children():
            allowed = set(getattr(module, "forward_kwargs", set())) | set(self.module_kwargs.get(name, []))
            module_kwargs = {k: v for k, v in kwargs.items() if k in allowed}
            features = module(features, **module_kwargs)
        return features

    # -- batched inference ----------------------------------------------------------------------------
    def _check_kwargs(self, kwargs: dict[str, Any], method: str) -> None:
        unknown = set(kwargs) - self.get_model_kwargs() - {"task"}
        if unknown:
            raise ValueError(
                f"{method}() got unexpected keyword argument(s) {sorted(unknown)}; this model accepts "
                f"{sorted(self.get_model_kwargs() | {'task'})} besides the standard ones."
            )

    def _prepare_device(self, device: str | None) -> torch.device:
        target = resolve_device(device) if device is not None else self.device
        if target != self.device:
            self.to(target)
        if self.training:
            self.eval()
        return target

    def _run_batches(
        self,
        inputs: list[Any],
        select: Callable[[dict[str, Any]], list[Any]],
        *,
        batch_size: int,
        show_progress_bar: bool | None,
        device: torch.device,
        prompt: str | None = None,
        extra_features: dict[str, Any] | None = None,
        forward_kwargs: dict[str, Any] | None = None,
        max_batch_tokens: int | None = None,
    ) -> list[Any]:
        """Tokenize, forward and ``select`` per-input results over batches sorted by token length (cut
        by ``batch_size`` and ``max_batch_tokens``); results come back in input order, and inputs cut at
        ``max_seq_length`` are reported (warning + info)."""
        if show_progress_bar is None:
            show_progress_bar = logger.getEffectiveLevel() <= logging.INFO
        forward_kwargs = forward_kwargs or {}
        truncated: list[int] = []

        def run_batch(batch: list[Any], indices: np.ndarray) -> list[Any]:
            features = self.tokenize([apply_prompt(prompt, item) for item in batch], **forward_kwargs)
            cut = features.pop("truncated", None)
            if cut is not None and bool(cut.any()):
                truncated.extend(int(indices[i]) for i in torch.nonzero(cut).flatten().tolist())
            features = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in features.items()}
            if extra_features:
                features.update(extra_features)
            return select(self.forward(features, **forward_kwargs))

        lengths = self._token_lengths(inputs, prompt)
        with torch.inference_mode():
            results = run_sorted_batches(inputs, run_batch, batch_size, lengths=lengths,
                                         max_batch_tokens=max_batch_tokens,
                                         tokens_per_text=self.batch_tokens_per_text if lengths else None,
                                         show_progress_bar=show_progress_bar, desc="Batches")
        self._report_truncation(len(inputs), truncated)
        return results

    def _token_lengths(self, inputs: list[Any], prompt: str | None) -> list[int] | None:
        """Token counts of the inputs (after the prompt and truncation) with the input module's fast
        tokenizer, so batches are sorted by what they cost; ``None`` (character lengths) otherwise."""
        first = self._input_module()
        tokenizer = getattr(first, "tokenizer", None)
        if isinstance(first, Router) or not getattr(tokenizer, "is_fast", False) or not inputs:
            return None
        items = [apply_prompt(prompt, item) for item in inputs]
        items = [next(iter(t.values())) if isinstance(t, dict) else t for t in items]
        if isinstance(items[0], (tuple, list)):
            columns = [[str(t[0]) for t in items], [str(t[1]) for t in items]]
        else:
            columns = [[str(t) for t in items]]
        if getattr(first, "do_lower_case", False):
            columns = [[s.lower() for s in col] for col in columns]
        max_length = getattr(first, "max_seq_length", None)
        lock = getattr(first, "_tokenizer_lock", None) or threading.Lock()
        with lock:
            ids = tokenizer(*columns, padding=False, truncation="longest_first" if max_length else False,
                            max_length=max_length)["input_ids"]
        return [len(x) for x in ids]

    def _report_truncation(self, n: int, truncated: list[int]) -> None:
        self._local.info = report_truncation(n, truncated, self.max_seq_length, self._info_attribute,
                                             external_stacklevel() + 1)

    _info_attribute = "last_encode_info"

    # -- saving -------------------------------------------------------------------------------------
    def save(
        self,
        path: str | os.PathLike,
        model_name: str | None = None,
        create_model_card: bool = True,
        train_datasets: list[str] | None = None,
        safe_serialization: bool = True,
    ) -> None:
        """Save in the sentence-transformers format (loadable by sentence-transformers itself).

        The folder is written beside the target and renamed into place: a failed save leaves an
        existing folder untouched; files a save does not own (notes, checkpoints) are kept.
        """
        if path is None:
            raise ValueError("save() needs a folder path.")
        with atomic_directory(path, keep=is_foreign_entry) as tmp:
            self._save_to(tmp, safe_serialization=safe_serialization)
            if create_model_card:
                from sentencekit.model_card import write_model_card

                write_model_card(self, tmp, model_name=model_name or self.model_name_or_path,
                                 train_datasets=train_datasets)

    def save_pretrained(self, path: str | os.PathLike, **kwargs: Any) -> None:
        """Alias of :meth:`save`."""
        self.save(path, **kwargs)

    def _save_to(self, folder: Path, *, safe_serialization: bool) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        lines = [f"  ({name}): {type(m).__name__}" for name, m in self.named_children()]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"
