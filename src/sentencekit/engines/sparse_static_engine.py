"""The NumPy engine of ``SparseStaticEmbedding`` (the query route of inference-free SPLADE): a text's row is,
for each vocabulary term in it, that term's learned weight (repeats count once), everything else 0. Same rows
as the torch module (texts tokenized without special tokens, cut at the tokenizer's ``model_max_length``),
with only ``tokenizers``, ``safetensors`` and NumPy loaded. The torch-free backend builds it for a Router's
``SparseStaticEmbedding`` route (:class:`~sentencekit.engines.router_engine.RouterEngine`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sentencekit.engines.fast_tokenizer import FastTokenizer
from sentencekit.engines.protocol import Engine, EngineOptions, Tokenized
from sentencekit.files import ModelFormatError, read_json, read_json_if_exists
from sentencekit.spec.model_spec import ModelSpec


def _model_max_length(folder: Path) -> int | None:
    """The tokenizer's ``model_max_length`` (what ``truncation=True`` cuts at); ``None`` for the "no limit"
    sentinel Hugging Face writes (1e30)."""
    value = (read_json_if_exists(folder / "tokenizer_config.json", what="tokenizer") or {}).get("model_max_length")
    return int(value) if isinstance(value, (int, float)) and 0 < value < 1_000_000 else None


def load_term_weights(folder: Path, tokenizer: FastTokenizer) -> np.ndarray:
    """``[vocab]`` float32 term weights of a saved ``SparseStaticEmbedding``: ``model.safetensors``
    ``{"weight"}``, or the ``{token: weight}`` JSON its config's ``path`` names (unlisted tokens: 0).
    Raises ``ModelFormatError`` when neither is there."""
    config = read_json_if_exists(folder / "config.json", what="SparseStaticEmbedding config") or {}
    if str(config.get("path", "")).endswith(".json"):
        json_path = Path(config["path"])
        table = read_json(json_path if json_path.is_absolute() else folder / json_path, what="token weights")
        if not isinstance(table, dict):
            raise ModelFormatError(f"{json_path}: expected a JSON object {{token: weight}}.")
        weight = np.zeros(tokenizer.backend.get_vocab_size(with_added_tokens=False), dtype=np.float32)
        vocab = tokenizer.backend.get_vocab(with_added_tokens=True)
        for token, value in table.items():
            index = vocab.get(token)
            if index is not None and index < len(weight):
                weight[index] = float(value)
        return weight
    path = folder / "model.safetensors"
    if not path.is_file():
        raise ModelFormatError(f"{path} not found: SparseStaticEmbedding runs without torch from safetensors "
                               "weights (re-save the model with safe_serialization=True).")
    from safetensors.numpy import load_file

    state = load_file(str(path))
    if "weight" not in state:
        raise ModelFormatError(f"{path}: SparseStaticEmbedding weights lack 'weight'.")
    return state["weight"].astype(np.float32).reshape(-1)


class SparseStaticEngine(Engine):
    """``SparseStaticEmbedding`` in NumPy (see the module docstring). ``run`` gives ``sentence_embedding``
    ``[b, vocab]`` float32 (dense: the sparse post-step makes it CSR)."""

    backend = "static"

    def __init__(self, spec: ModelSpec, options: EngineOptions) -> None:
        if options.device is not None and str(options.device) != "cpu":
            raise ValueError(f"SparseStaticEmbedding on the torch-free path runs on the CPU; got device="
                             f"{options.device!r}. Use backend='torch' for GPUs.")
        from sentencekit.engines.onnx_engine import cpu_compute_dtype

        # a lookup has no int8 kernel to use: int8 (asked for the Router's transformer route) leaves it float32
        cpu_compute_dtype(options.compute_dtype, "SparseStaticEmbedding")
        if [e.kind for e in spec.modules] != ["SparseStaticEmbedding"]:
            raise ValueError(f"{spec.folder}: the torch-free path runs SparseStaticEmbedding alone (a Router route); "
                             f"this route is {spec.module_kinds}. Use backend='torch'.")
        self.spec = spec
        self.compute_dtype = "float32"
        folder = spec.modules[0].path
        self.tokenizer_json = folder / "tokenizer.json"
        self._tokenizer = FastTokenizer.from_file(self.tokenizer_json, folder, max_length=_model_max_length(folder),
                                                  add_special_tokens=False)
        self.weight = load_term_weights(folder, self._tokenizer)
        self._num_threads = options.num_threads

    def tokenize(self, items: list[Any], task: str | None = None) -> Tokenized:
        return self._tokenizer.encode(items)

    def run(self, tokenized: Tokenized, indices: np.ndarray, *, outputs: frozenset[str], prompt_length: int = 0,
            task: str | None = None, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
        if outputs != {"sentence_embedding"}:
            raise ValueError("A sparse encoder outputs sentence embeddings only.")
        ids = [tokenized.ids[i] for i in indices]
        counts = np.fromiter((len(r) for r in ids), dtype=np.int64, count=len(ids))
        out = np.zeros((len(ids), len(self.weight)), dtype=np.float32)
        if counts.sum():
            cols = np.concatenate(ids)
            out[np.repeat(np.arange(len(ids)), counts), cols] = self.weight[cols]  # repeats write the same value
        return {"sentence_embedding": out}

    @property
    def max_seq_length(self) -> int | None:
        return self._tokenizer.max_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"max_seq_length must be a positive integer, got {value!r}")
        self._tokenizer.set_max_length(value)

    @property
    def tokenizer(self) -> FastTokenizer:
        return self._tokenizer

    def dimension(self) -> int:
        return int(len(self.weight))

    def fingerprint(self) -> str:
        import hashlib

        from sentencekit.fingerprint import file_fingerprint

        weights = hashlib.sha256(np.ascontiguousarray(self.weight, dtype=np.float32).tobytes()).hexdigest()
        return file_fingerprint("sparse-static", self.max_seq_length, weights, files=(self.tokenizer_json,))

    def describe(self) -> str:
        return f"sparse static folder={self.spec.modules[0].path.name!r}, vocab={self.dimension()}"


__all__ = ["SparseStaticEngine", "load_term_weights"]
