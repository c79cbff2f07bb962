"""``SentenceTransformer``: the bi-encoder. Loads a model folder into a sequence of modules, encodes
texts into embeddings, scores them and saves the model in the sentence-transformers format.

The heavy lifting lives in shared helpers: name resolution (``hub``), the on-disk format (``format``),
batching (``batching``), prompts (``prompts``) and output conversion (``output``).
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from sentencekit import __version__
from sentencekit._warnings import external_stacklevel
from sentencekit.batching import as_input_list, run_sorted_batches
from sentencekit.devices import resolve_device
from sentencekit.files import ModelFormatError, atomic_directory
from sentencekit.format import (
    MODULES_FILE,
    is_foreign_entry,
    load_modules,
    read_model_config,
    save_modules,
    write_model_config,
)
from sentencekit.hub import DEFAULT_MODEL, resolve_model
from sentencekit.modules import Normalize, Pooling, Router, StaticEmbedding, Transformer
from sentencekit.modules.static import is_model2vec_folder, model2vec_normalizes
from sentencekit.output import check_truncate_dim, convert_rows, truncate_and_normalize
from sentencekit.prompts import apply_prompt, resolve_prompt
from sentencekit.quantization import check_precision
from sentencekit.similarity import check_similarity_fn_name, pairwise_similarity_fn, similarity_fn

logger = logging.getLogger(__name__)

OutputValue = Literal["sentence_embedding", "token_embeddings"] | None


@dataclass(frozen=True)
class EncodeInfo:
    """What the last ``encode`` call in this thread did: how many inputs were longer than
    ``max_seq_length`` and were cut (their indices in the input)."""

    num_inputs: int = 0
    num_truncated: int = 0
    truncated_indices: tuple[int, ...] = field(default_factory=tuple)
    max_seq_length: int | None = None


class SentenceTransformer(nn.Sequential):
    """Load a sentence-transformers model and turn texts into embeddings.

    >>> from sentencekit import SentenceTransformer
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
    >>> emb = model.encode(["How do I get a refund?", "What is your return policy?"])
    >>> emb.shape
    (2, 384)
    >>> float(model.similarity(emb[:1], emb[1:])) > 0.5
    True
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        modules: list[nn.Module] | None = None,
        device: str | None = None,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        similarity_fn_name: str | None = None,
        cache_folder: str | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        local_files_only: bool = False,
        token: bool | str | None = None,
        truncate_dim: int | None = None,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.model_name_or_path = None if model_name_or_path is None else os.fspath(model_name_or_path)
        self.model_folder: Path | None = None
        saved_config: dict[str, Any] = {}
        module_kwargs: dict[str, list[str]] = {}
        if modules is None and model_name_or_path is not None:
            resolution = resolve_model(model_name_or_path, cache_folder=cache_folder, revision=revision,
                                       token=token, local_files_only=local_files_only)
            self.model_folder = resolution.path
            modules, module_kwargs, saved_config = _load_folder(
                resolution.path, trust_remote_code=trust_remote_code, model_kwargs=model_kwargs,
                tokenizer_kwargs=tokenizer_kwargs, config_kwargs=config_kwargs,
            )
        elif modules is None:
            raise ValueError("Pass a model name or path, or a list of modules.")
        if isinstance(modules, (OrderedDict, dict)):
            super().__init__(OrderedDict(modules))
        else:
            super().__init__(*modules)
        self.module_kwargs = module_kwargs

        # Saved prompts fill only the keys the user left unset (as in sentence-transformers).
        self.prompts: dict[str, str] = {"query": "", "document": ""}
        self.prompts.update({k: v for k, v in (saved_config.get("prompts") or {}).items() if v is not None})
        if prompts:
            self.prompts.update(prompts)
        self.default_prompt_name = default_prompt_name or saved_config.get("default_prompt_name")
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise ValueError(f"default_prompt_name {self.default_prompt_name!r} is not one of the prompts "
                             f"{sorted(self.prompts)}.")
        fn_name = similarity_fn_name or saved_config.get("similarity_fn_name")
        self._similarity_fn_name = check_similarity_fn_name(fn_name) if fn_name else None
        self.truncate_dim = truncate_dim if truncate_dim is not None else saved_config.get("truncate_dim")
        check_truncate_dim(self.truncate_dim, self._full_dimension())
        self._prompt_lengths: dict[str, int] = {}
        self._local = threading.local()

        # All modules share the dtype of the first parameter (e.g. model_kwargs={"torch_dtype": bf16}).
        first = next(self.parameters(), None)
        if first is not None and first.is_floating_point():
            self.to(first.dtype)
        self.to(resolve_device(device))

    # -- pickling (multi-process pools) -------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        state.pop("_local", None)
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

    @property
    def similarity_fn_name(self) -> str:
        if self._similarity_fn_name is None:
            self._similarity_fn_name = "cosine"
        return self._similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, value: str) -> None:
        self._similarity_fn_name = check_similarity_fn_name(value)

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
        limit = _position_limit(first)
        if limit is not None and value > limit:
            raise ValueError(f"max_seq_length={value} exceeds the model's {limit} position embeddings.")
        first.max_seq_length = value

    @property
    def last_encode_info(self) -> EncodeInfo:
        """Truncation report of the last ``encode`` call made by this thread."""
        return getattr(self._local, "info", EncodeInfo())

    def _full_dimension(self) -> int | None:
        for module in reversed(list(self)):
            for name in ("get_sentence_embedding_dimension", "get_word_embedding_dimension"):
                method = getattr(module, name, None)
                if method is not None:
                    dim = method()
                    if dim is not None:
                        return int(dim)
        return None

    def get_sentence_embedding_dimension(self) -> int | None:
        dim = self._full_dimension()
        if dim is not None and self.truncate_dim is not None:
            return min(dim, self.truncate_dim)
        return dim

    get_embedding_dimension = get_sentence_embedding_dimension

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

    def _prompt_length(self, prompt: str, **kwargs: Any) -> int:
        """Number of tokens the prompt adds (without a trailing special token), for include_prompt."""
        key = f"{prompt}\0{kwargs.get('task')}"
        if key not in self._prompt_lengths:
            features = self.tokenize([prompt], **kwargs)
            length = int(features["input_ids"].shape[-1])
            tokenizer = self.tokenizer
            special = set(getattr(tokenizer, "all_special_ids", []) or [])
            if length and int(features["input_ids"][0, -1]) in special:
                length -= 1
            self._prompt_lengths[key] = length
        return self._prompt_lengths[key]

    def _needs_prompt_length(self) -> bool:
        return any(isinstance(m, Pooling) and not m.include_prompt for m in self.modules())

    # -- encode -------------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode(
        self,
        sentences: str | list[str] | np.ndarray,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: OutputValue = "sentence_embedding",
        precision: Literal["float32", "int8", "uint8", "binary", "ubinary"] = "float32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | None = None,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
        **kwargs: Any,
    ) -> np.ndarray | Tensor | list:
        """Embed texts. A list gives a ``[N, dim]`` float32 NumPy array, a single string ``[dim]``.

        Inputs are sorted by length into batches (less padding) and returned in input order. Texts
        longer than ``max_seq_length`` are cut by the tokenizer: that is reported (a warning per call,
        and ``model.last_encode_info``), never silent.

        >>> model.encode("Hello world").shape                      # doctest: +SKIP
        (384,)
        >>> model.encode(["a", "b"], normalize_embeddings=True, truncate_dim=128).shape  # doctest: +SKIP
        (2, 128)
        """
        texts, single = as_input_list(sentences)
        unknown = set(kwargs) - self.get_model_kwargs() - {"task"}
        if unknown:
            raise ValueError(
                f"encode() got unexpected keyword argument(s) {sorted(unknown)}; this model accepts "
                f"{sorted(self.get_model_kwargs() | {'task'})} besides the standard ones."
            )
        check_precision(precision)
        if output_value not in ("sentence_embedding", "token_embeddings", None):
            raise ValueError(f"output_value must be 'sentence_embedding', 'token_embeddings' or None, "
                             f"got {output_value!r}")
        if convert_to_tensor:
            convert_to_numpy = False
        if output_value != "sentence_embedding":
            convert_to_numpy = convert_to_tensor = False
        if show_progress_bar is None:
            show_progress_bar = logger.getEffectiveLevel() <= logging.INFO
        truncate_dim = truncate_dim if truncate_dim is not None else self.truncate_dim
        check_truncate_dim(truncate_dim, self._full_dimension())

        prompt_text = resolve_prompt(self.prompts, prompt_name, prompt, self.default_prompt_name)
        extra: dict[str, Any] = {}
        if prompt_text and self._needs_prompt_length():
            extra["prompt_length"] = self._prompt_length(prompt_text, **kwargs)

        target = resolve_device(device) if device is not None else self.device
        if target != self.device:
            self.to(target)
        if self.training:
            self.eval()

        truncated: list[int] = []

        def run_batch(batch: list[Any], indices: np.ndarray) -> list[Any]:
            features = self.tokenize([apply_prompt(prompt_text, t) for t in batch], **kwargs)
            cut = features.pop("truncated", None)
            if cut is not None and bool(cut.any()):
                truncated.extend(int(indices[i]) for i in torch.nonzero(cut).flatten().tolist())
            features = {k: v.to(target) if isinstance(v, Tensor) else v for k, v in features.items()}
            features.update(extra)
            out = self.forward(features, **kwargs)
            return _select_output(out, output_value, truncate_dim, normalize_embeddings, convert_to_numpy)

        rows = run_sorted_batches(texts, run_batch, batch_size, show_progress_bar=show_progress_bar,
                                  desc="Batches")
        self._report_truncation(len(texts), truncated)

        if output_value != "sentence_embedding":
            return rows[0] if single else rows
        dim = self.get_sentence_embedding_dimension()
        if truncate_dim is not None and dim is not None:
            dim = min(dim, truncate_dim)
        result = convert_rows(rows, precision=precision, convert_to_numpy=convert_to_numpy,
                              convert_to_tensor=convert_to_tensor, empty_dim=dim, device=target)
        return result[0] if single else result

    def encode_query(self, sentences: Any, prompt_name: str | None = None, **kwargs: Any) -> Any:
        """``encode`` for search queries: uses the ``query`` prompt (if the model has one) and the
        ``query`` route of Router models."""
        if prompt_name is None and kwargs.get("prompt") is None and "query" in self.prompts:
            prompt_name = "query"
        self._set_task(kwargs, "query")
        return self.encode(sentences, prompt_name=prompt_name, **kwargs)

    def encode_document(self, sentences: Any, prompt_name: str | None = None, **kwargs: Any) -> Any:
        """``encode`` for documents: the first of the ``document`` / ``passage`` / ``corpus`` prompts the
        model has, and the ``document`` route of Router models."""
        if prompt_name is None and kwargs.get("prompt") is None:
            prompt_name = next((n for n in ("document", "passage", "corpus") if n in self.prompts), None)
        self._set_task(kwargs, "document")
        return self.encode(sentences, prompt_name=prompt_name, **kwargs)

    def _set_task(self, kwargs: dict[str, Any], task: str) -> None:
        routers = [m for m in self.modules() if isinstance(m, Router)]
        if routers and "task" not in kwargs and any(task in r.sub_modules for r in routers):
            kwargs["task"] = task

    def _report_truncation(self, n: int, truncated: list[int]) -> None:
        info = EncodeInfo(n, len(truncated), tuple(sorted(truncated)), self.max_seq_length)
        self._local.info = info
        if truncated:
            first = ", ".join(str(i) for i in info.truncated_indices[:5])
            more = " ..." if len(truncated) > 5 else ""
            warnings.warn(
                f"{len(truncated)} of {n} inputs were longer than max_seq_length={self.max_seq_length} tokens "
                f"and were truncated (indices {first}{more}); their endings do not count in the embeddings. "
                "Split long texts into chunks, or raise max_seq_length if the model allows. "
                "Details: model.last_encode_info.",
                TruncationWarning,
                stacklevel=external_stacklevel(),
            )

    # -- similarity ---------------------------------------------------------------------------------
    def similarity(self, embeddings1: Any, embeddings2: Any) -> Tensor:
        """All-pairs scores ``[n, m]`` with the model's similarity function (cosine by default;
        euclidean/manhattan are negated distances, so higher is always more similar)."""
        return similarity_fn(self.similarity_fn_name)(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> Tensor:
        """Row-by-row scores ``[n]`` with the model's similarity function."""
        return pairwise_similarity_fn(self.similarity_fn_name)(embeddings1, embeddings2)

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
        existing folder untouched.
        """
        if path is None:
            raise ValueError("save() needs a folder path.")
        with atomic_directory(path, keep=is_foreign_entry) as tmp:
            save_modules(list(self), tmp, safe_serialization=safe_serialization,
                         module_kwargs=self.module_kwargs)
            write_model_config(tmp, self._model_config())
            if create_model_card:
                from sentencekit.model_card import write_model_card

                write_model_card(self, tmp, model_name=model_name or self.model_name_or_path,
                                 train_datasets=train_datasets)

    save_pretrained = save

    def _model_config(self) -> dict[str, Any]:
        import transformers

        config: dict[str, Any] = {
            "model_type": "SentenceTransformer",
            "__version__": {"sentencekit": __version__, "transformers": transformers.__version__,
                            "pytorch": torch.__version__},
            "prompts": self.prompts,
            "default_prompt_name": self.default_prompt_name,
            "similarity_fn_name": self.similarity_fn_name,
        }
        if self.truncate_dim is not None:
            config["truncate_dim"] = self.truncate_dim
        return config

    def __repr__(self) -> str:
        lines = [f"  ({name}): {type(m).__name__}" for name, m in self.named_children()]
        return "SentenceTransformer(\n" + "\n".join(lines) + "\n)"


class TruncationWarning(UserWarning):
    """Some inputs were longer than the model's max_seq_length and were cut."""


def _select_output(out: dict[str, Any], output_value: OutputValue, truncate_dim: int | None,
                   normalize: bool, to_cpu: bool) -> list[Any]:
    if output_value == "sentence_embedding":
        emb = truncate_and_normalize(out["sentence_embedding"].detach(), truncate_dim, normalize)
        if to_cpu:
            emb = emb.cpu()
        return list(emb)
    if output_value == "token_embeddings":
        mask = out["attention_mask"]
        rows = []
        for emb, m in zip(out["token_embeddings"], mask):
            real = torch.nonzero(m).flatten()
            last = int(real[-1]) + 1 if len(real) else 0
            rows.append(emb[:last].detach())
        return rows
    n = len(out["sentence_embedding"]) if "sentence_embedding" in out else len(out["input_ids"])
    rows = []
    for i in range(n):
        rows.append({k: v[i] for k, v in out.items() if isinstance(v, Tensor) and v.dim() and len(v) == n})
    return rows


def _position_limit(module: nn.Module) -> int | None:
    auto_model = getattr(module, "auto_model", None)
    return getattr(getattr(auto_model, "config", None), "max_position_embeddings", None)


def _load_folder(folder: Path, **kwargs: Any) -> tuple[list[nn.Module], dict[str, list[str]], dict[str, Any]]:
    """Modules and model config of a folder: a sentence-transformers folder, a model2vec folder, or a
    plain Hugging Face transformer (which gets mean pooling)."""
    config = read_model_config(folder)
    trust_remote_code = kwargs.pop("trust_remote_code", False)
    model_type = config.get("model_type", "SentenceTransformer")
    if (folder / MODULES_FILE).is_file() and model_type == "SentenceTransformer":
        modules, module_kwargs = load_modules(folder, trust_remote_code=trust_remote_code, **kwargs)
        return modules, module_kwargs, config
    if is_model2vec_folder(folder):
        modules = [StaticEmbedding.from_model2vec(folder)]
        if model2vec_normalizes(folder):
            modules.append(Normalize())
        return modules, {}, {}
    if not (folder / "config.json").is_file():
        raise ModelFormatError(
            f"{folder} is not a model folder: it has no {MODULES_FILE} (sentence-transformers) and no "
            "config.json (Hugging Face transformer)."
        )
    if model_type != "SentenceTransformer":
        logger.warning("%s was saved as a %s; loading its transformer with mean pooling.", folder, model_type)
    warnings.warn(
        f"No sentence-transformers model found in {folder}: creating a new one with mean pooling "
        "(Transformer + Pooling).",
        stacklevel=external_stacklevel(),
    )
    transformer = Transformer.load(folder, trust_remote_code=trust_remote_code, **kwargs)
    pooling = Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean")
    return [transformer, pooling], {}, {}


__all__ = ["SentenceTransformer", "EncodeInfo", "TruncationWarning", "DEFAULT_MODEL"]
