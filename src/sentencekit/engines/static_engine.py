"""The NumPy engine of static-embedding models (model2vec folders and ``StaticEmbedding`` pipelines):
a table of token vectors averaged per text, then ``Dense`` and ``Normalize``. Same embeddings as the torch
``StaticEmbedding`` (an ``nn.EmbeddingBag`` in mean mode), with only ``tokenizers``, ``safetensors`` and
NumPy loaded. ``backend="onnx"`` picks it for static folders: there is no graph to export.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

from sentencekit.engines.numpy_ops import NumpyDense, l2_normalize
from sentencekit.engines.protocol import Engine, EngineOptions, Tokenized
from sentencekit.files import ModelFormatError, read_json_if_exists
from sentencekit.model2vec import model2vec_table
from sentencekit.spec.model_spec import ModelSpec

STATIC_CONFIG_FILE = "static_embedding_config.json"


def load_table(path: Path, tokenizer: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    """The float32 token table of a static module folder and the token ids averaging leaves out."""
    from safetensors.numpy import load_file

    weights = path / "model.safetensors"
    if not weights.is_file():
        raise ModelFormatError(f"{weights} not found: static models run without torch from safetensors weights.")
    state = load_file(str(weights))
    if "embedding.weight" in state:
        config = read_json_if_exists(path / STATIC_CONFIG_FILE) or {}
        return state["embedding.weight"].astype(np.float32), tuple(int(i) for i in config.get("drop_token_ids", ()))
    if "embeddings" in state:
        return model2vec_table(state, tokenizer)
    raise ModelFormatError(f"{weights}: weights have neither 'embedding.weight' nor 'embeddings'.")


class StaticEngine(Engine):
    """A static pipeline in NumPy (see the module docstring). Nothing is ever truncated."""

    backend = "static"

    def __init__(self, spec: ModelSpec, options: EngineOptions) -> None:
        from tokenizers import Tokenizer

        if options.device is not None and str(options.device) != "cpu":
            raise ValueError(f"A static-embedding model on the torch-free path runs on the CPU; got device="
                             f"{options.device!r}. Use backend='torch' for GPUs.")
        from sentencekit.engines.onnx_engine import check_compute_dtype

        if check_compute_dtype(options.compute_dtype) not in ("float32", "auto"):
            raise ValueError("A static-embedding model runs in float32 on the torch-free path (it is a table "
                             "lookup: int8/bf16 would not make it faster).")
        self.spec = spec
        self.compute_dtype = "float32"
        if spec.layout == "model2vec":
            table_folder, after = spec.folder, []
        else:
            table_folder, after = spec.modules[0].path, list(spec.modules[1:])
        self.tokenizer_file = table_folder / "tokenizer.json"
        self._tok = Tokenizer.from_file(str(self.tokenizer_file))
        self._tok.no_padding()
        self._tok.no_truncation()
        self.table, self.drop_ids = load_table(table_folder, self._tok)
        self.dense: list[NumpyDense] = []
        for i, entry in enumerate(after):
            if entry.kind == "Dense" and all(e.kind != "Normalize" for e in after[:i]):
                self.dense.append(NumpyDense(entry.path, entry.config.get("activation_function")))
            elif entry.kind != "Normalize":
                raise ValueError(f"{spec.folder}: the torch-free static path runs StaticEmbedding -> Dense -> "
                                 f"Normalize; this model is {spec.module_kinds}. Use backend='torch'.")
        self.normalize = spec.normalize
        self._lock = threading.Lock()
        self._num_threads = options.num_threads

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock")
        state["_tok"] = self._tok.to_str()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from tokenizers import Tokenizer

        state["_tok"] = Tokenizer.from_str(state["_tok"])
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def tokenize(self, items: list[Any], task: str | None = None) -> Tokenized:
        texts = [str(next(iter(t.values()))) if isinstance(t, dict) else str(t) for t in items]
        with self._lock:
            encodings = self._tok.encode_batch(texts, add_special_tokens=False)
        drop = set(self.drop_ids)
        ids = [np.asarray([i for i in e.ids if i not in drop] if drop else e.ids, dtype=np.int64) for e in encodings]
        lengths = np.fromiter((len(r) for r in ids), dtype=np.int64, count=len(ids))
        return Tokenized(list(items), lengths, np.zeros(len(ids), dtype=bool), ids, [np.zeros_like(r) for r in ids])

    def run(self, tokenized: Tokenized, indices: np.ndarray, *, outputs: frozenset[str], prompt_length: int = 0,
            task: str | None = None, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
        if outputs != {"sentence_embedding"}:
            raise ValueError("A static-embedding model has no token embeddings: use output_value='sentence_embedding'.")
        ids = [tokenized.ids[i] for i in indices]
        counts = np.fromiter((len(r) for r in ids), dtype=np.int64, count=len(ids))
        out = np.zeros((len(ids), self.table.shape[1]), dtype=np.float32)  # an empty text embeds as zeros
        rows = np.flatnonzero(counts)
        if len(rows):
            flat = np.concatenate([ids[r] for r in rows])
            starts = np.concatenate(([0], np.cumsum(counts[rows])[:-1]))
            out[rows] = np.add.reduceat(self.table[flat], starts, axis=0) / counts[rows, None].astype(np.float32)
        for dense in self.dense:
            out = dense(out)
        return {"sentence_embedding": l2_normalize(out) if self.normalize else out}

    @property
    def max_seq_length(self) -> float:
        return math.inf

    @max_seq_length.setter
    def max_seq_length(self, value: Any) -> None:
        raise ValueError("A static-embedding model has no length limit to set.")

    @property
    def tokenizer(self) -> Any:
        """The ``tokenizers.Tokenizer`` (as the torch ``StaticEmbedding`` exposes it)."""
        return self._tok

    def dimension(self) -> int:
        return int(self.dense[-1].weight.shape[0]) if self.dense else int(self.table.shape[1])

    def fingerprint(self) -> str:
        """The fingerprint the torch model of this folder has (same weights, configs and tokenizer), so a
        stored index opens on either backend."""
        from sentencekit.fingerprint import layout_fingerprint, tokenizer_identity

        def entry(name: str, array: np.ndarray) -> tuple:
            array = np.ascontiguousarray(array, dtype=np.float32)
            return name, "torch.float32", tuple(array.shape), array.view(np.uint8)

        tensors = [entry("0.embedding.weight", self.table)]
        configs: list = [["StaticEmbedding", {}], tokenizer_identity(self._tok)]
        for i, dense in enumerate(self.dense, 1):
            tensors.append(entry(f"{i}.linear.weight", dense.weight))
            if dense.bias is not None:
                tensors.append(entry(f"{i}.linear.bias", dense.bias))
            configs.append(["Dense", dense.config])
        if self.normalize:
            configs.append(["Normalize", {}])
        return layout_fingerprint(tensors, configs)

    def describe(self) -> str:
        return f"static folder={self.spec.folder.name!r}, dim={self.dimension()}"


__all__ = ["StaticEngine", "load_table", "STATIC_CONFIG_FILE"]
