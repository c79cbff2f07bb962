"""``SentenceTransformer``: the bi-encoder. Loads a model folder into a sequence of modules, encodes
texts into embeddings, scores them and saves the model in the sentence-transformers format.

The heavy lifting lives in shared helpers: name resolution (``hub``), the on-disk format (``format``),
batching (``batching``), prompts (``prompts``) and output conversion (``output``).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from sentencekit import __version__
from sentencekit._warnings import external_stacklevel
from sentencekit.base_model import BaseModel, EncodeInfo, TruncationWarning
from sentencekit.batching import as_input_list
from sentencekit.files import ModelFormatError
from sentencekit.format import MODULES_FILE, load_modules, read_model_config, save_modules, write_model_config
from sentencekit.hub import DEFAULT_MODEL
from sentencekit.model_api import EmbedderAPI, pool_aware
from sentencekit.modules import Normalize, Pooling, Router, StaticEmbedding, Transformer
from sentencekit.modules.static import is_model2vec_folder, model2vec_normalizes
from sentencekit.output import check_truncate_dim, convert_rows, truncate_and_normalize
from sentencekit.prompts import resolve_prompt
from sentencekit.quantization import check_precision
from sentencekit.runtime.torch_precision import apply_compute_dtype
from sentencekit.similarity import pairwise_similarity_fn, similarity_fn

logger = logging.getLogger(__name__)

OutputValue = Literal["sentence_embedding", "token_embeddings"] | None


class SentenceTransformer(EmbedderAPI, BaseModel):
    """Load a sentence-transformers model and turn texts into embeddings.

    >>> from sentencekit import SentenceTransformer
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
    >>> emb = model.encode(["How do I get a refund?", "What is your return policy?"])
    >>> emb.shape
    (2, 384)
    >>> float(model.similarity(emb[:1], emb[1:])) > 0.4
    True

    ``backend="onnx"`` returns an ONNX Runtime model with the same API (see ``sentencekit.runtime``);
    ``compute_dtype="bfloat16"`` (or ``"auto"`` on CPUs with AVX-512 BF16 / AMX) runs the model in bf16
    (its weights are converted, as with ``model_kwargs={"torch_dtype": torch.bfloat16}``; embeddings
    still come back as float32); ``num_threads`` sets torch's intra-op threads.
    """

    onnx_class_path = "sentencekit.runtime.embedder.OnnxSentenceTransformer"

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
        *,
        backend: str = "torch",
        num_threads: int | None = None,
        compute_dtype: str | None = "float32",
    ) -> None:
        if backend != "torch":
            raise ValueError(f"Unknown backend {backend!r}; choose from torch, onnx.")
        super().__init__(
            model_name_or_path, modules, device=device, cache_folder=cache_folder, revision=revision,
            local_files_only=local_files_only, token=token,
            load_kwargs={"trust_remote_code": trust_remote_code, "model_kwargs": model_kwargs,
                         "tokenizer_kwargs": tokenizer_kwargs, "config_kwargs": config_kwargs},
        )
        self._init_settings(self.saved_config, prompts=prompts, default_prompt_name=default_prompt_name,
                            similarity_fn_name=similarity_fn_name, truncate_dim=truncate_dim)
        self.num_threads = num_threads
        self.compute_dtype = apply_compute_dtype(self, compute_dtype)

    @classmethod
    def _load_folder(cls, folder: Path, **kwargs: Any) -> tuple[list[nn.Module], dict[str, list[str]], dict]:
        return _load_embedder_folder(folder, **kwargs)

    # -- properties ---------------------------------------------------------------------------------
    def _full_dimension(self) -> int | None:
        for module in reversed(list(self)):
            for name in ("get_sentence_embedding_dimension", "get_word_embedding_dimension"):
                method = getattr(module, name, None)
                if method is not None:
                    dim = method()
                    if dim is not None:
                        return int(dim)
        return None

    def _prompt_length(self, prompt: str, **kwargs: Any) -> int:
        """Number of tokens the prompt adds (without a trailing special token), for include_prompt."""
        key = f"{prompt}\0{kwargs.get('task')}"
        if key not in self._prompt_lengths:
            features = self.tokenize([prompt], **kwargs)
            length = int(features["input_ids"].shape[-1])
            special = set(getattr(self.tokenizer, "all_special_ids", []) or [])
            if length and int(features["input_ids"][0, -1]) in special:
                length -= 1
            self._prompt_lengths[key] = length
        return self._prompt_lengths[key]

    def _needs_prompt_length(self) -> bool:
        return any(isinstance(m, Pooling) and not m.include_prompt for m in self.modules())

    # -- encode -------------------------------------------------------------------------------------
    @pool_aware
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
        device: str | list[str] | None = None,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
        max_batch_tokens: int | None = None,
        pool: Any = None,
        chunk_size: int | None = None,
        **kwargs: Any,
    ) -> np.ndarray | Tensor | list:
        """Embed texts. A list gives a ``[N, dim]`` float32 NumPy array, a single string ``[dim]``.

        Inputs are sorted by token length into batches, so batches pad little, and returned in input
        order. On CPUs a batch holds ``batch_size * model.batch_tokens_per_text`` padded tokens (short texts
        share bigger batches, long ones smaller); an explicit ``max_batch_tokens`` caps the tokens and
        ``batch_size`` the texts; on GPUs batches hold ``batch_size`` texts. Texts
        longer than ``max_seq_length`` are cut by the tokenizer: that is reported (a warning per call,
        and ``model.last_encode_info``), never silent.

        >>> model.encode("Hello world").shape                      # doctest: +SKIP
        (384,)
        >>> model.encode(["a", "b"], normalize_embeddings=True, truncate_dim=128).shape  # doctest: +SKIP
        (2, 128)

        ``pool=model.start_multi_process_pool()`` (or ``device=["cuda:0", "cuda:1"]``) spreads the texts
        over worker processes in chunks of ``chunk_size`` (see ``sentencekit.parallel``).
        """
        texts, single = as_input_list(sentences)
        self._check_kwargs(kwargs, "encode")
        check_precision(precision)
        if output_value not in ("sentence_embedding", "token_embeddings", None):
            raise ValueError(f"output_value must be 'sentence_embedding', 'token_embeddings' or None, "
                             f"got {output_value!r}")
        if convert_to_tensor:
            convert_to_numpy = False
        if output_value != "sentence_embedding":
            convert_to_numpy = convert_to_tensor = False
        truncate_dim = truncate_dim if truncate_dim is not None else self.truncate_dim
        check_truncate_dim(truncate_dim, self._full_dimension())

        prompt_text = resolve_prompt(self.prompts, prompt_name, prompt, self.default_prompt_name)
        extra: dict[str, Any] = {}
        if prompt_text and self._needs_prompt_length():
            extra["prompt_length"] = self._prompt_length(prompt_text, **kwargs)
        target = self._prepare_device(device)

        bf16_compute = self.compute_dtype == "bfloat16"

        def select(out: dict[str, Any]) -> list[Any]:
            if bf16_compute:  # bf16 arithmetic, float32 results
                out = {k: v.float() if isinstance(v, Tensor) and v.dtype == torch.bfloat16 else v
                       for k, v in out.items()}
            return _select_output(out, output_value, truncate_dim, normalize_embeddings, convert_to_numpy)

        rows = self._run_batches(texts, select, batch_size=batch_size, show_progress_bar=show_progress_bar,
                                 device=target, prompt=prompt_text, extra_features=extra, forward_kwargs=kwargs,
                                 max_batch_tokens=max_batch_tokens)
        if output_value != "sentence_embedding":
            return rows[0] if single else rows
        dim = self.get_sentence_embedding_dimension()
        if truncate_dim is not None and dim is not None:
            dim = min(dim, truncate_dim)
        result = convert_rows(rows, precision=precision, convert_to_numpy=convert_to_numpy,
                              convert_to_tensor=convert_to_tensor, empty_dim=dim, device=target)
        return result[0] if single else result

    def _set_task(self, kwargs: dict[str, Any], task: str) -> None:
        routers = [m for m in self.modules() if isinstance(m, Router)]
        if routers and "task" not in kwargs and any(task in r.sub_modules for r in routers):
            kwargs["task"] = task

    # -- similarity ---------------------------------------------------------------------------------
    def similarity(self, embeddings1: Any, embeddings2: Any) -> Tensor:
        """All-pairs scores ``[n, m]`` with the model's similarity function (cosine by default;
        euclidean/manhattan are negated distances, so higher is always more similar)."""
        return similarity_fn(self.similarity_fn_name)(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> Tensor:
        """Row-by-row scores ``[n]`` with the model's similarity function."""
        return pairwise_similarity_fn(self.similarity_fn_name)(embeddings1, embeddings2)

    # -- saving -------------------------------------------------------------------------------------
    def _save_to(self, folder: Path, *, safe_serialization: bool) -> None:
        save_modules(list(self), folder, safe_serialization=safe_serialization, module_kwargs=self.module_kwargs)
        write_model_config(folder, self._model_config())

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


def _load_embedder_folder(folder: Path, **kwargs: Any) -> tuple[list[nn.Module], dict[str, list[str]], dict]:
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
    transformer = Transformer.load(folder, trust_remote_code=trust_remote_code, **kwargs)
    saved_as = f" (it was saved as a {model_type})" if model_type != "SentenceTransformer" else ""
    warnings.warn(
        f"No sentence-transformers model found in {folder}{saved_as}: creating a new one with mean pooling "
        "(Transformer + Pooling).",
        stacklevel=external_stacklevel(),
    )
    pooling = Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean")
    return [transformer, pooling], {}, {}


__all__ = ["SentenceTransformer", "EncodeInfo", "TruncationWarning", "DEFAULT_MODEL"]
