"""``OnnxCrossEncoder``: ``CrossEncoder(name, backend="onnx")``. The sequence-classification graph runs
on ONNX Runtime; the activation (Sigmoid for one label by default) runs in NumPy.

>>> from sentencekit import CrossEncoder
>>> model = CrossEncoder("path/to/reranker", backend="onnx")                         # doctest: +SKIP
>>> model.predict([("How do I get a refund?", "Refunds take 5 days.")])             # doctest: +SKIP
array([0.93], dtype=float32)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sentencekit.batching import as_input_list
from sentencekit.files import read_json_if_exists
from sentencekit.model_api import RerankerAPI, pool_aware
from sentencekit.runtime.artifacts import export_variant, locate
from sentencekit.runtime.base import OnnxBase, check_compute_dtype, check_cpu_device, default_max_length, resolve_folder
from sentencekit.runtime.folder import read_transformer_config
from sentencekit.runtime.numpy_ops import activation, softmax


def _hf_folder(folder: Path) -> Path:
    """The folder with config.json / tokenizer files (v6 layout: the Transformer module's folder)."""
    modules = read_json_if_exists(folder / "modules.json")
    if isinstance(modules, list) and modules and isinstance(modules[0], dict):
        return folder / modules[0].get("path", "")
    return folder


class OnnxCrossEncoder(RerankerAPI, OnnxBase):
    """A cross-encoder (reranker) on ONNX Runtime: ``predict`` and ``rank`` as on the torch backend.

    ``compute_dtype``: ``"float32"`` (default, scores as the torch path) or ``"int8"``.
    """

    _info_attribute = "last_predict_info"
    #: padded tokens per pair of ``batch_size`` (512 tokens at batch 32): in a sweep over 300 sample pairs of
    #: ~59 tokens, 384-768 tokens per batch ran fastest and 1536+ slowest; the margin over 1024 is a few
    #: percent, inside this machine's noise (benchmarks/compare_peers.py puts CrossEncoder onnx fp32 at 1.47-1.56x)
    batch_tokens_per_text = 16

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        num_labels: int | None = None,
        max_length: int | None = None,
        activation_fn: Callable[[np.ndarray], np.ndarray] | None = None,
        device: str | None = None,
        cache_folder: str | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        local_files_only: bool = False,
        token: bool | str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        *,
        modules: Any = None,
        num_threads: int | None = None,
        compute_dtype: str | None = None,
        calibration_pairs: list[tuple[str, str]] | None = None,
    ) -> None:
        if modules is not None or model_name_or_path is None:
            raise ValueError("backend='onnx' loads a saved model by name or path; modules=... needs backend='torch'.")
        check_cpu_device(device)
        dtype = check_compute_dtype(compute_dtype)
        if dtype == "bfloat16":
            raise ValueError("ONNX Runtime has no fast bf16 kernels on x86 CPUs; use backend='torch', "
                             "compute_dtype='bfloat16', or compute_dtype='int8' here.")
        self.compute_dtype = "int8" if dtype == "int8" else "float32"
        self.model_name_or_path = os.fspath(model_name_or_path)
        folder = resolve_folder(model_name_or_path, cache_folder=cache_folder, revision=revision, token=token,
                                local_files_only=local_files_only)
        self.model_folder = folder
        hf_folder = _hf_folder(folder)
        torch_kwargs = {"num_labels": num_labels, "trust_remote_code": trust_remote_code,
                        "model_kwargs": model_kwargs, "tokenizer_kwargs": tokenizer_kwargs,
                        "config_kwargs": config_kwargs}

        def export(target: Path) -> Path:
            from sentencekit.runtime.export import export_reranker_folder

            return export_reranker_folder(folder, target, torch_kwargs)

        def calibrate(src: Path, dst: Path) -> dict[str, Any]:
            from sentencekit.runtime.quantize import GraphRunner, quantize_reranker

            runner = GraphRunner(self._make_tokenizer_for(src, hf_folder), "logits")
            return quantize_reranker(src, dst, runner, calibration_pairs)

        artifact = locate(folder, export_variant("reranker", torch_kwargs),
                          file_name=(model_kwargs or {}).get("file_name"), compute_dtype=self.compute_dtype,
                          export=export, calibration=calibrate)
        self._open(artifact.graph, num_threads)
        tconf = read_transformer_config(hf_folder)
        self._open_tokenizer(artifact.tokenizer_json, hf_folder,
                             tconf.get("max_seq_length") or default_max_length(hf_folder),
                             bool(tconf.get("do_lower_case", False)))
        if max_length is not None:
            self.max_seq_length = max_length
        self._logits = "logits" if "logits" in [o.name for o in self._session.get_outputs()] else \
            self._session.get_outputs()[0].name
        hf_config = read_json_if_exists(hf_folder / "config.json") or {}
        self.num_labels = int(self.meta.get("num_labels") or num_labels or hf_config.get("num_labels")
                              or len(hf_config.get("id2label") or {}) or 1)
        self.activation_fn = activation_fn or activation(self.meta.get("activation_fn") or
                                                         _saved_activation(folder, hf_config, self.num_labels))

    def _make_tokenizer_for(self, graph: Path, hf_folder: Path) -> Any:
        from sentencekit.runtime.tokenizer import FastTokenizer

        tokenizer_json = graph.with_suffix(".tokenizer.json")
        if not tokenizer_json.is_file():
            tokenizer_json = hf_folder / "tokenizer.json"
        tconf = read_transformer_config(hf_folder)
        return FastTokenizer.from_file(tokenizer_json, hf_folder,
                                       max_length=tconf.get("max_seq_length") or default_max_length(hf_folder),
                                       do_lower_case=bool(tconf.get("do_lower_case", False)))

    @pool_aware
    def predict(
        self,
        sentences: Any,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: Callable[[np.ndarray], np.ndarray] | None = None,
        apply_softmax: bool = False,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | list[str] | None = None,
        max_batch_tokens: int | None = None,
        pool: Any = None,
        chunk_size: int | None = None,
    ) -> Any:
        """Score pairs: ``[N]`` float32 scores (``[N, num_labels]`` for multi-label models); one pair gives
        a scalar. Pairs are tokenized once and batched by token length."""
        pairs, single = as_input_list(sentences, allow_pairs=True, what="sentences")
        check_cpu_device(device)
        act = activation_fn if activation_fn is not None else self.activation_fn
        scores = np.zeros((len(pairs), self.num_labels), dtype=np.float32)

        def run_batch(features: dict[str, np.ndarray], idx: np.ndarray) -> None:
            scores[idx] = self._session.run([self._logits], features)[0]

        self._run([tuple(p) for p in pairs], run_batch, batch_size=batch_size, max_batch_tokens=max_batch_tokens,
                  show_progress_bar=show_progress_bar)
        if act is not None:
            scores = np.asarray(act(scores), dtype=np.float32)
        if self.num_labels == 1:
            scores = scores.reshape(-1)
        elif apply_softmax:
            scores = softmax(scores, axis=1).astype(np.float32)
        if convert_to_tensor:
            import torch

            result: Any = torch.from_numpy(np.ascontiguousarray(scores))
        else:
            result = scores if convert_to_numpy else list(scores)
        return result[0] if single else result

def _saved_activation(folder: Path, hf_config: dict[str, Any], num_labels: int) -> str:
    saved = read_json_if_exists(folder / "config_sentence_transformers.json") or {}
    path = (saved.get("activation_fn") or (hf_config.get("sentence_transformers") or {}).get("activation_fn")
            or hf_config.get("sbert_ce_default_activation_function"))
    return path or ("torch.nn.modules.activation.Sigmoid" if num_labels == 1 else "torch.nn.modules.linear.Identity")


__all__ = ["OnnxCrossEncoder"]
