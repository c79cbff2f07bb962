"""``CrossEncoder``: the reranker. Reads a (query, document) pair jointly and scores it; slow per pair,
precise, and meant for re-scoring a shortlist, never for scanning a corpus.

It is the same module pipeline as the embedder (a ``Transformer`` with ``transformer_task=
"sequence-classification"``), loaded by the same resolver, batched by the same code.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sentencekit import __version__
from sentencekit._warnings import external_stacklevel
from sentencekit.base_model import BaseModel
from sentencekit.batching import as_input_list
from sentencekit.files import ModelFormatError, read_json_if_exists
from sentencekit.format import MODULES_FILE, read_model_config, read_modules_json, resolve_type
from sentencekit.model_api import RerankerAPI, pool_aware
from sentencekit.modules import Transformer
from sentencekit.modules.activations import activation_name, resolve_activation
from sentencekit.output import to_numpy
from sentencekit.runtime.torch_precision import apply_compute_dtype

logger = logging.getLogger(__name__)

Pair = tuple[str, str] | list[str]


class CrossEncoder(RerankerAPI, BaseModel):
    """Score text pairs with a cross-encoder (reranker).

    >>> from sentencekit import CrossEncoder
    >>> model = CrossEncoder("path/to/reranker")                                    # doctest: +SKIP
    >>> model.predict([("How do I get a refund?", "Refunds take 5 days."),
    ...                ("How do I get a refund?", "Paris is mild today.")])          # doctest: +SKIP
    array([0.93, 0.01], dtype=float32)
    >>> model.rank("How do I get a refund?", ["Refunds take 5 days.", "Paris is mild today."])  # doctest: +SKIP
    [{'corpus_id': 0, 'score': 0.93}, {'corpus_id': 1, 'score': 0.01}]
    """

    _info_attribute = "last_predict_info"

    onnx_class_path = "sentencekit.runtime.reranker.OnnxCrossEncoder"

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        num_labels: int | None = None,
        max_length: int | None = None,
        activation_fn: Callable[[Tensor], Tensor] | None = None,
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
        modules: list[nn.Module] | None = None,
        backend: str = "torch",
        num_threads: int | None = None,
        compute_dtype: str | None = "float32",
    ) -> None:
        if backend != "torch":
            raise ValueError(f"Unknown backend {backend!r}; choose from torch, onnx.")
        self.trust_remote_code = trust_remote_code
        super().__init__(
            model_name_or_path, modules, device=device, cache_folder=cache_folder, revision=revision,
            local_files_only=local_files_only, token=token,
            load_kwargs={"num_labels": num_labels, "max_length": max_length,
                         "trust_remote_code": trust_remote_code, "model_kwargs": model_kwargs,
                         "tokenizer_kwargs": tokenizer_kwargs, "config_kwargs": config_kwargs},
        )
        if not isinstance(self._input_module(), Transformer) or len(self) != 1:
            raise ModelFormatError("A CrossEncoder is a single sequence-classification Transformer module; "
                                   f"got {[type(m).__name__ for m in self]}.")
        if self[0].transformer_task != "sequence-classification":
            raise ModelFormatError("A CrossEncoder needs a Transformer with "
                                   "transformer_task='sequence-classification'.")
        if max_length is not None and modules is not None:
            self.max_seq_length = max_length
        if activation_fn is None:
            activation_fn = self._saved_activation()
        self.activation_fn = activation_fn
        self.num_threads = num_threads
        self.compute_dtype = apply_compute_dtype(self, compute_dtype)

    def __setattr__(self, name: str, value: Any) -> None:
        # The activation is a plain attribute, not a submodule: it must not become a pipeline step.
        if name in ("activation_fn", "compute_dtype"):
            self.__dict__[name] = value
            return
        super().__setattr__(name, value)

    # -- loading --------------------------------------------------------------------------------------
    @classmethod
    def _load_folder(cls, folder: Path, *, num_labels: int | None, max_length: int | None,
                     trust_remote_code: bool, model_kwargs: dict | None, tokenizer_kwargs: dict | None,
                     config_kwargs: dict | None) -> tuple[list[nn.Module], dict, dict]:
        saved = read_model_config(folder)
        config_kwargs = dict(config_kwargs or {})
        if num_labels is not None:
            config_kwargs["num_labels"] = num_labels
        hf_config = read_json_if_exists(folder / "config.json") or {}
        if (folder / MODULES_FILE).is_file() and saved.get("model_type") == "CrossEncoder":
            # sentence-transformers v6 layout: modules.json with one sequence-classification Transformer.
            entries = read_modules_json(folder)
            types = [resolve_type(e["type"], trust_remote_code=trust_remote_code).__name__ for e in entries]
            if types != ["Transformer"]:
                raise ModelFormatError(
                    f"{folder / MODULES_FILE}: this CrossEncoder uses modules {types}; sentencekit supports "
                    "sequence-classification rerankers (a single Transformer module)."
                )
            module_folder = folder / entries[0]["path"]
        else:
            # sentence-transformers v5 layout: a Hugging Face *ForSequenceClassification folder.
            module_folder = folder
            archs = hf_config.get("architectures") or []
            if any(a.endswith("ForCausalLM") for a in archs):
                raise ModelFormatError(f"{folder} is a causal language model; sentencekit's CrossEncoder "
                                       "supports sequence-classification rerankers.")
            if not any(a.endswith("ForSequenceClassification") for a in archs):
                config_kwargs.setdefault("num_labels", 1)  # a fresh classification head
        transformer = Transformer.load(
            module_folder, model_kwargs=model_kwargs, tokenizer_kwargs=tokenizer_kwargs,
            config_kwargs=config_kwargs, trust_remote_code=trust_remote_code,
            transformer_task="sequence-classification",
        )
        if max_length is not None:
            transformer.max_seq_length = max_length
        saved = {**saved, "hf_sentence_transformers": hf_config.get("sentence_transformers") or {},
                 "legacy_activation": hf_config.get("sbert_ce_default_activation_function")}
        return [transformer], {}, saved

    def _saved_activation(self) -> nn.Module:
        """The activation a saved model names (v6 model config, v5 config.json, legacy key), resolved
        only among torch's own unless trust_remote_code; otherwise Sigmoid for one label, else Identity."""
        saved = self.saved_config
        path = (saved.get("activation_fn") or saved.get("hf_sentence_transformers", {}).get("activation_fn")
                or saved.get("legacy_activation"))
        if path:
            try:
                return resolve_activation(path, trust_remote_code=self.trust_remote_code)
            except ValueError as exc:
                warnings.warn(f"{exc} Using the default activation instead.", stacklevel=external_stacklevel())
        return nn.Sigmoid() if self.num_labels == 1 else nn.Identity()

    # -- properties -----------------------------------------------------------------------------------
    @property
    def model(self) -> nn.Module:
        """The Hugging Face ``*ForSequenceClassification`` model."""
        return self[0].auto_model

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def num_labels(self) -> int:
        return int(self.config.num_labels)

    # -- inference ------------------------------------------------------------------------------------
    @pool_aware
    def predict(
        self,
        sentences: Pair | Sequence[Pair],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: Callable[[Tensor], Tensor] | None = None,
        apply_softmax: bool = False,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | list[str] | None = None,
        max_batch_tokens: int | None = None,
        pool: Any = None,
        chunk_size: int | None = None,
    ) -> np.ndarray | Tensor | list[Tensor] | np.floating:
        """Score pairs. A list of N pairs gives ``[N]`` scores (``[N, num_labels]`` for multi-label
        models); a single pair gives a scalar. Pairs are batched by length through the same code as
        ``encode``; pairs longer than ``max_length`` are reported, not cut silently.

        >>> model.predict([("query", "relevant passage"), ("query", "other text")])  # doctest: +SKIP
        array([0.91, 0.02], dtype=float32)

        ``pool=model.start_multi_process_pool()`` spreads the pairs over worker processes in chunks of
        ``chunk_size`` (see ``sentencekit.parallel``).
        """
        pairs, single = as_input_list(sentences, allow_pairs=True, what="sentences")
        if convert_to_tensor:
            convert_to_numpy = False
        activation = activation_fn if activation_fn is not None else self.activation_fn
        num_labels = self.num_labels
        target = self._prepare_device(device)

        def select(out: dict[str, Any]) -> list[Tensor]:
            scores = out["scores"]
            if scores.is_floating_point() and torch.finfo(scores.dtype).bits < 32:
                scores = scores.float()  # score half-precision models in float32 (ties, softmax)
            if activation is not None:
                scores = activation(scores)
            if num_labels == 1 and scores.dim() > 1:
                scores = scores.squeeze(-1)
            if apply_softmax and scores.dim() > 1:
                scores = torch.nn.functional.softmax(scores, dim=1)
            return list(scores.detach().cpu() if convert_to_numpy else scores.detach())

        rows = self._run_batches([tuple(p) for p in pairs], select, batch_size=batch_size,
                                 show_progress_bar=show_progress_bar, device=target, max_batch_tokens=max_batch_tokens)
        if convert_to_tensor:
            result: Any = torch.stack(rows) if rows else torch.empty(0, device=target)
        elif convert_to_numpy:
            result = to_numpy(torch.stack(rows)).astype(np.float32) if rows else np.empty(0, dtype=np.float32)
        else:
            result = rows
        return result[0] if single else result

    # -- saving ---------------------------------------------------------------------------------------
    def _save_to(self, folder: Path, *, safe_serialization: bool) -> None:
        """The sentence-transformers v5 CrossEncoder layout (a Hugging Face sequence-classification
        folder whose config.json names the activation), which v5 and v6 both load."""
        transformer: Transformer = self[0]
        # sentence-transformers takes the length limit from the tokenizer; ours is max_seq_length.
        transformer.tokenizer.model_max_length = transformer.max_seq_length
        self.config.sentence_transformers = {"activation_fn": activation_name(self.activation_fn),
                                             "version": f"sentencekit-{__version__}"}
        transformer.save(folder, safe_serialization=safe_serialization)


__all__ = ["CrossEncoder"]
