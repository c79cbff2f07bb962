"""``OnnxSentenceTransformer``: ``SentenceTransformer(name, backend="onnx")``. The same ``encode`` API on
ONNX Runtime, with only ``tokenizers``, ``onnxruntime`` and NumPy loaded once the export exists.

>>> from sentencekit import SentenceTransformer
>>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2", backend="onnx")  # doctest: +SKIP
>>> model.encode(["How do I get a refund?"]).shape                                         # doctest: +SKIP
(1, 384)
>>> SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2", backend="onnx",
...                     compute_dtype="int8").encode("fast").shape                        # doctest: +SKIP
(384,)
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from sentencekit.batching import as_input_list
from sentencekit.model_api import EmbedderAPI, pool_aware
from sentencekit.output import check_truncate_dim, convert_array
from sentencekit.prompts import resolve_prompt
from sentencekit.quantization import check_precision
from sentencekit.runtime.artifacts import export_variant, locate
from sentencekit.runtime.base import (
    OnnxBase,
    check_compute_dtype,
    check_cpu_device,
    default_max_length,
    resolve_folder,
)
from sentencekit.runtime.folder import PipelineSpec, read_pipeline
from sentencekit.runtime.numpy_ops import NumpyDense, l2_normalize, pool
from sentencekit.runtime.tokenizer import FastTokenizer
from sentencekit.similarity import np_pairwise_similarity_fn, np_similarity_fn

logger = logging.getLogger(__name__)


class OnnxSentenceTransformer(EmbedderAPI, OnnxBase):
    """A sentence-transformers embedder on ONNX Runtime (see the module docstring).

    ``compute_dtype``: ``"float32"`` (embeddings identical to the torch path), ``"int8"`` (dynamic
    quantization with calibrated fp32 exceptions: faster, cosine ~0.99 to float32) or ``"auto"``
    (float32). bf16 has no fast ONNX Runtime kernels on x86 CPUs: use ``backend="torch",
    compute_dtype="bfloat16"``.
    """

    _info_attribute = "last_encode_info"

    def __new__(cls, model_name_or_path: str | os.PathLike | None = None, *args: Any, **kwargs: Any) -> Any:
        # A static-embedding folder needs no graph (a NumPy table lookup); a Router runs each route its way.
        if cls is OnnxSentenceTransformer and model_name_or_path is not None and kwargs.get("modules") is None:
            from sentencekit.runtime.router import RoutedSentenceTransformer, router_entry
            from sentencekit.runtime.static import StaticSentenceTransformer, is_static_folder

            folder = resolve_folder(model_name_or_path, local_files_only=bool(kwargs.get("local_files_only")),
                                    **{k: kwargs.get(k) for k in ("cache_folder", "revision", "token")})
            if is_static_folder(folder):
                return super().__new__(StaticSentenceTransformer)
            if router_entry(folder) is not None:
                return super().__new__(RoutedSentenceTransformer)
        return super().__new__(cls)

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        modules: Any = None,
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
        num_threads: int | None = None,
        compute_dtype: str | None = None,
        calibration_texts: list[str] | None = None,
    ) -> None:
        folder = self._resolve_model(model_name_or_path, modules, device, cache_folder=cache_folder,
                                     revision=revision, token=token, local_files_only=local_files_only)
        dtype = check_compute_dtype(compute_dtype)
        if dtype == "bfloat16":
            raise ValueError("ONNX Runtime has no fast bf16 kernels on x86 CPUs (it would run far slower than "
                             "float32). Use backend='torch', compute_dtype='bfloat16' (fast where the CPU has "
                             "AVX-512 BF16 / AMX), or compute_dtype='int8' here.")
        self.compute_dtype = "int8" if dtype == "int8" else "float32"
        if self.compute_dtype == "int8":
            from sentencekit.runtime.cpu import cpu_features

            if not cpu_features().vnni:
                logger.warning("This CPU has no VNNI/AMX int8 instructions: int8 runs, but gains less over float32.")
        self.spec: PipelineSpec = read_pipeline(folder)
        torch_kwargs = {"trust_remote_code": trust_remote_code, "model_kwargs": model_kwargs,
                        "tokenizer_kwargs": tokenizer_kwargs, "config_kwargs": config_kwargs}
        file_name = (model_kwargs or {}).get("file_name")

        def export(target: Path) -> Path:
            if not self.spec.supported:  # refuse before loading it with torch
                raise ValueError(f"The ONNX backend exports Transformer -> Pooling -> Dense -> Normalize pipelines; "
                                 f"{folder} is {self.spec.module_types}. Use backend='torch'.")
            from sentencekit.runtime.export import export_embedder_folder

            return export_embedder_folder(folder, target, torch_kwargs)

        def calibrate(src: Path, dst: Path) -> dict[str, Any]:
            from sentencekit.runtime.quantize import quantize_embedder

            return quantize_embedder(src, dst, self._calibration_runner(src), calibration_texts)

        artifact = locate(folder, export_variant("embedder", torch_kwargs), file_name=file_name,
                          compute_dtype=self.compute_dtype, export=export, calibration=calibrate)
        self._init_from(artifact.graph, artifact.tokenizer_json, num_threads)
        self._init_settings(self.spec.model_config, prompts=prompts, default_prompt_name=default_prompt_name,
                            similarity_fn_name=similarity_fn_name, truncate_dim=truncate_dim)

    def _resolve_model(self, model_name_or_path: str | os.PathLike | None, modules: Any, device: str | None,
                       **resolve: Any) -> Path:
        """Check what every torch-free embedder needs (a saved model, the CPU), then find its folder."""
        if modules is not None or model_name_or_path is None:
            raise ValueError("backend='onnx' loads a saved model by name or path; modules=... needs backend='torch'.")
        check_cpu_device(device)
        self.model_name_or_path = os.fspath(model_name_or_path)
        self.model_folder = resolve_folder(model_name_or_path, **resolve)
        return self.model_folder

    @classmethod
    def _arguments(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The constructor's arguments by name (defaults filled in), for subclasses that take ``*args,
        **kwargs`` and pick what they use."""
        bound = inspect.signature(OnnxSentenceTransformer.__init__).bind(None, *args, **kwargs)
        bound.apply_defaults()
        return {k: v for k, v in bound.arguments.items() if k != "self"}

    def _init_from(self, graph: Path, tokenizer_json: Path, num_threads: int | None) -> None:
        self._open(graph, num_threads)
        max_length = self.spec.max_seq_length or default_max_length(self.spec.transformer_path)
        self._open_tokenizer(tokenizer_json, self.spec.transformer_path, max_length, self.spec.do_lower_case)
        self.full_pipeline = self.meta.get("kind") == "embedder"
        if not self.full_pipeline:
            if not self.spec.supported:
                raise ValueError(f"{graph} holds only the transformer, and this model's modules "
                                 f"{self.spec.module_types} cannot run in NumPy after it.")
            self._dense = [NumpyDense(d.path, d.activation) for d in self.spec.dense]
            self._token_output = self._session.get_outputs()[0].name

    def _calibration_runner(self, graph: Path) -> Any:
        from sentencekit.runtime.quantize import GraphRunner

        tokenizer_json = graph.with_suffix(".tokenizer.json")
        if not tokenizer_json.is_file():
            tokenizer_json = self.spec.transformer_path / "tokenizer.json"
        max_length = self.spec.max_seq_length or default_max_length(self.spec.transformer_path)
        tok = FastTokenizer.from_file(tokenizer_json, self.spec.transformer_path, max_length=max_length,
                                      do_lower_case=self.spec.do_lower_case)
        return GraphRunner(tok, "sentence_embedding")

    # -- properties -----------------------------------------------------------------------------------
    def _full_dimension(self) -> int | None:
        if self.meta.get("dim"):
            return int(self.meta["dim"])
        if self.spec.dense:
            return self.spec.dense[-1].out_features
        dim = self._session.get_outputs()[0].shape[-1]
        word = self.spec.word_dim or (dim if isinstance(dim, int) else None)
        return int(word) * len(self.spec.pooling_modes) if word else None

    def _include_prompt(self) -> bool:
        return bool(self.meta.get("include_prompt", self.spec.include_prompt))

    def _prompt_length(self, prompt: str) -> int:
        if prompt not in self._prompt_lengths:
            ids = self._tokenizer.encode([prompt]).ids[0]
            length = len(ids)
            if length and int(ids[-1]) in self._tokenizer.all_special_ids:
                length -= 1
            self._prompt_lengths[prompt] = length
        return self._prompt_lengths[prompt]

    # -- encode -------------------------------------------------------------------------------------
    @pool_aware
    def encode(
        self,
        sentences: str | list[str] | np.ndarray,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: str | None = "sentence_embedding",
        precision: str = "float32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | None = None,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
        max_batch_tokens: int | None = None,
        pool: Any = None,
        chunk_size: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Embed texts: ``[N, dim]`` float32 NumPy array for a list, ``[dim]`` for one string.

        Inputs are tokenized once, sorted by token length and cut into batches of at most
        ``batch_size * batch_tokens_per_text`` padded tokens (an explicit ``max_batch_tokens`` caps the
        tokens and ``batch_size`` the texts), see :func:`sentencekit.batching.resolve_batching`.

        >>> model.encode(["a", "b"], normalize_embeddings=True).shape      # doctest: +SKIP
        (2, 384)
        """
        texts, single = as_input_list(sentences)
        if set(kwargs) - {"task"}:
            raise ValueError(f"encode() got unexpected keyword argument(s) {sorted(set(kwargs) - {'task'})}.")
        check_precision(precision)
        check_cpu_device(device)
        if output_value not in ("sentence_embedding", "token_embeddings", None):
            raise ValueError(f"output_value must be 'sentence_embedding', 'token_embeddings' or None, "
                             f"got {output_value!r}")
        truncate_dim = truncate_dim if truncate_dim is not None else self.truncate_dim
        check_truncate_dim(truncate_dim, self._full_dimension())
        prompt_text = resolve_prompt(self.prompts, prompt_name, prompt, self.default_prompt_name)
        prompt_length = self._prompt_length(prompt_text) if prompt_text and not self._include_prompt() else 0

        n = len(texts)
        dim = self._full_dimension() or 0
        embeddings = np.zeros((n, dim), dtype=np.float32)
        tokens: list[Any] = [None] * n
        want_tokens = output_value != "sentence_embedding"

        def run_batch(features: dict[str, np.ndarray], idx: np.ndarray) -> None:
            emb, tok = self._forward(features, prompt_length, want_tokens)
            if emb is not None:
                embeddings[idx] = emb
            if want_tokens:
                lengths = features["attention_mask"].sum(axis=1)
                left = self._tokenizer.padding_side == "left"
                for row, i in enumerate(idx):
                    width = tok.shape[1]
                    tokens[i] = tok[row, width - lengths[row]:] if left else tok[row, : lengths[row]]

        self._run(texts, run_batch, batch_size=batch_size, max_batch_tokens=max_batch_tokens,
                  show_progress_bar=show_progress_bar, prompt=prompt_text)
        if output_value == "token_embeddings":
            return tokens[0] if single else tokens
        if truncate_dim is not None:
            embeddings = embeddings[:, :truncate_dim]
        if normalize_embeddings:
            embeddings = l2_normalize(embeddings)
        if output_value is None:
            rows = [{"sentence_embedding": embeddings[i], "token_embeddings": tokens[i]} for i in range(n)]
            return rows[0] if single else rows
        result = convert_array(embeddings, precision=precision, convert_to_numpy=convert_to_numpy,
                               convert_to_tensor=convert_to_tensor)
        return result[0] if single else result

    def _forward(self, features: dict[str, np.ndarray], prompt_length: int,
                 want_tokens: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
        if self.full_pipeline:
            if "prompt_length" in self._inputs:
                features["prompt_length"] = np.array(prompt_length, dtype=np.int64)
            names = ["sentence_embedding", "token_embeddings"] if want_tokens else ["sentence_embedding"]
            out = self._session.run(names, features)
            return out[0], (out[1] if want_tokens else None)
        tok = self._session.run([self._token_output], features)[0]
        pl = prompt_length if not self.spec.include_prompt else 0
        emb = pool(tok, features["attention_mask"], self.spec.pooling_modes, pl)
        for dense in self._dense:
            emb = dense(emb)
        if self.spec.normalize:
            emb = l2_normalize(emb)
        return emb.astype(np.float32, copy=False), tok

    # -- similarity ---------------------------------------------------------------------------------
    def similarity(self, embeddings1: Any, embeddings2: Any) -> np.ndarray:
        """All-pairs scores ``[n, m]`` (a NumPy array on this backend)."""
        return np_similarity_fn(self.similarity_fn_name)(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> np.ndarray:
        """Row-by-row scores ``[n]`` (a NumPy array on this backend)."""
        return np_pairwise_similarity_fn(self.similarity_fn_name)(embeddings1, embeddings2)


__all__ = ["OnnxSentenceTransformer"]
