"""Static-embedding models without torch: ``SentenceTransformer(name, backend="onnx")`` on a model2vec
folder or a sentence-transformers ``StaticEmbedding`` folder needs no ONNX graph at all. A static model
is a table of token vectors averaged per text, so NumPy runs it directly: the same embeddings as the
torch ``StaticEmbedding`` (an ``nn.EmbeddingBag`` in mean mode), with only ``tokenizers``, ``safetensors``
and NumPy loaded.

>>> from sentencekit import SentenceTransformer
>>> model = SentenceTransformer("minishlab/potion-base-8M", backend="onnx")     # doctest: +SKIP
>>> type(model).__name__, model.encode(["How do I get a refund?"]).shape         # doctest: +SKIP
('StaticSentenceTransformer', (1, 256))

"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sentencekit.batching import EncodeInfo, as_input_list
from sentencekit.files import ModelFormatError, read_json, read_json_if_exists
from sentencekit.model2vec import is_model2vec_folder, model2vec_normalizes, model2vec_table
from sentencekit.model_api import pool_aware
from sentencekit.output import check_truncate_dim, convert_array
from sentencekit.prompts import apply_prompt, resolve_prompt
from sentencekit.quantization import check_precision
from sentencekit.runtime.base import check_compute_dtype, check_cpu_device
from sentencekit.runtime.embedder import OnnxSentenceTransformer
from sentencekit.runtime.numpy_ops import NumpyDense, l2_normalize

STATIC_CONFIG_FILE = "static_embedding_config.json"


@dataclass
class StaticSpec:
    """A static pipeline: token table, ids dropped before averaging, then Dense layers and Normalize."""

    folder: Path
    tokenizer_file: Path
    table: np.ndarray
    drop_ids: tuple[int, ...] = ()
    dense: list[NumpyDense] = field(default_factory=list)
    normalize: bool = False
    model_config: dict[str, Any] = field(default_factory=dict)


def _load_table(path: Path, tokenizer: Any) -> tuple[np.ndarray, tuple[int, ...]]:
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


def read_static(folder: Path) -> StaticSpec | None:
    """The static pipeline of ``folder``, or ``None`` when the model is not a static one. Raises
    ``ValueError`` for a static model with modules NumPy cannot run after it."""
    from tokenizers import Tokenizer

    folder = Path(folder)
    modules_file = folder / "modules.json"
    config = read_json_if_exists(folder / "config_sentence_transformers.json") or {}
    if modules_file.is_file() and config.get("model_type", "SentenceTransformer") == "SentenceTransformer":
        entries = read_json(modules_file, what="modules")
        types = [str(e.get("type", "")).rsplit(".", 1)[-1] for e in entries]
        if not types or types[0] != "StaticEmbedding":
            return None
        first = folder / entries[0].get("path", "")
        tokenizer_file = first / "tokenizer.json"
        table, drop = _load_table(first, Tokenizer.from_file(str(tokenizer_file)))
        spec = StaticSpec(folder, tokenizer_file, table, drop, model_config=config)
        for entry, kind in zip(entries[1:], types[1:]):
            path = folder / entry.get("path", "")
            if kind == "Normalize":
                spec.normalize = True
            elif kind == "Dense" and not spec.normalize:
                dconf = read_json(path / "config.json", what="Dense config")
                spec.dense.append(NumpyDense(path, dconf.get("activation_function")))
            else:
                raise ValueError(f"{folder}: the torch-free static path runs StaticEmbedding -> Dense -> Normalize; "
                                 f"this model is {types}. Use backend='torch'.")
        return spec
    if not modules_file.is_file() and is_model2vec_folder(folder):
        tokenizer_file = folder / "tokenizer.json"
        table, drop = _load_table(folder, Tokenizer.from_file(str(tokenizer_file)))
        return StaticSpec(folder, tokenizer_file, table, drop, normalize=model2vec_normalizes(folder))
    return None


def is_static_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a static-embedding model (cheap: reads configs, not weights)."""
    folder = Path(folder)
    modules_file = folder / "modules.json"
    if modules_file.is_file():
        entries = read_json(modules_file, what="modules")
        return bool(entries) and str(entries[0].get("type", "")).rsplit(".", 1)[-1] == "StaticEmbedding"
    return is_model2vec_folder(folder)


# -- the model ----------------------------------------------------------------------------------------
class StaticSentenceTransformer(OnnxSentenceTransformer):
    """A static-embedding model on NumPy (see the module docstring); ``SentenceTransformer(name,
    backend="onnx")`` returns one for static folders. The API is the ONNX embedder's; there is no length
    limit, so nothing is ever truncated."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """The arguments of ``SentenceTransformer(..., backend="onnx")``; those of graphs and tokenizers
        (``model_kwargs``, ``calibration_texts``...) do not apply to a table lookup."""
        from tokenizers import Tokenizer

        a = self._arguments(*args, **kwargs)
        self._resolve_model(a["model_name_or_path"], a["modules"], a["device"], cache_folder=a["cache_folder"],
                            revision=a["revision"], token=a["token"], local_files_only=a["local_files_only"])
        if check_compute_dtype(a["compute_dtype"]) not in ("float32", "auto"):
            raise ValueError("A static-embedding model runs in float32 on the torch-free path (it is a table "
                             "lookup: int8/bf16 would not make it faster).")
        self.compute_dtype = "float32"
        spec = read_static(self.model_folder)
        if spec is None:
            raise ModelFormatError(f"{self.model_folder} is not a static-embedding model.")
        self.static = spec
        self._tok = Tokenizer.from_file(str(spec.tokenizer_file))
        self._tok.no_padding()
        self._tok.no_truncation()
        self._tok_lock = threading.Lock()
        self._local = threading.local()
        self.meta: dict[str, Any] = {"kind": "static"}
        self._num_threads = a["num_threads"]
        self._init_settings(spec.model_config, prompts=a["prompts"], default_prompt_name=a["default_prompt_name"],
                            similarity_fn_name=a["similarity_fn_name"], truncate_dim=a["truncate_dim"])

    # -- what differs from a graph-backed model ------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        """The ``tokenizers.Tokenizer`` (as the torch ``StaticEmbedding`` exposes it)."""
        return self._tok

    @property
    def num_threads(self) -> int | None:
        """Accepted for API compatibility: a table lookup runs on one thread."""
        return self._num_threads

    @num_threads.setter
    def num_threads(self, value: int | None) -> None:
        self._num_threads = value

    @property
    def max_seq_length(self) -> float:
        return math.inf

    @max_seq_length.setter
    def max_seq_length(self, value: Any) -> None:
        raise ValueError("A static-embedding model has no length limit to set.")

    @property
    def session(self) -> None:
        return None

    def _full_dimension(self) -> int | None:
        if self.static.dense:
            return int(self.static.dense[-1].weight.shape[0])
        return int(self.static.table.shape[1])

    def fingerprint(self) -> str:
        """The fingerprint the torch model of this folder has (same weights, configs and tokenizer), so a
        stored index opens on either backend."""
        from sentencekit.fingerprint import layout_fingerprint, tokenizer_identity

        def entry(name: str, array: np.ndarray) -> tuple:
            array = np.ascontiguousarray(array, dtype=np.float32)
            return name, "torch.float32", tuple(array.shape), array.view(np.uint8)

        tensors = [entry("0.embedding.weight", self.static.table)]
        configs: list = [["StaticEmbedding", {}], tokenizer_identity(self._tok)]
        for i, dense in enumerate(self.static.dense, 1):
            tensors.append(entry(f"{i}.linear.weight", dense.weight))
            if dense.bias is not None:
                tensors.append(entry(f"{i}.linear.bias", dense.bias))
            configs.append(["Dense", dense.config])
        if self.static.normalize:
            configs.append(["Normalize", {}])
        return layout_fingerprint(tensors, configs)

    # -- encode -------------------------------------------------------------------------------------
    def _embed(self, texts: list[str]) -> np.ndarray:
        with self._tok_lock:
            encodings = self._tok.encode_batch(texts, add_special_tokens=False)
        drop = set(self.static.drop_ids)
        ids = [[i for i in e.ids if i not in drop] if drop else e.ids for e in encodings]
        counts = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
        dim = self.static.table.shape[1]
        out = np.zeros((len(ids), dim), dtype=np.float32)  # an empty text embeds as zeros, as EmbeddingBag
        rows = np.flatnonzero(counts)
        if len(rows):
            flat = np.fromiter((i for r in rows for i in ids[r]), dtype=np.int64, count=int(counts[rows].sum()))
            starts = np.concatenate(([0], np.cumsum(counts[rows])[:-1]))
            sums = np.add.reduceat(self.static.table[flat], starts, axis=0)
            out[rows] = sums / counts[rows, None].astype(np.float32)
        for dense in self.static.dense:
            out = dense(out)
        return l2_normalize(out) if self.static.normalize else out

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
        device: str | list[str] | None = None,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
        max_batch_tokens: int | None = None,
        pool: Any = None,
        chunk_size: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Embed texts: ``[N, dim]`` float32 for a list, ``[dim]`` for one string (see the ONNX embedder).

        >>> model.encode(["a refund", "the weather"], normalize_embeddings=True).shape   # doctest: +SKIP
        (2, 256)
        """
        texts, single = as_input_list(sentences)
        if set(kwargs) - {"task"}:
            raise ValueError(f"encode() got unexpected keyword argument(s) {sorted(set(kwargs) - {'task'})}.")
        check_precision(precision)
        check_cpu_device(device)
        if output_value != "sentence_embedding":
            raise ValueError("A static-embedding model has no token embeddings: use "
                             "output_value='sentence_embedding'.")
        truncate_dim = truncate_dim if truncate_dim is not None else self.truncate_dim
        check_truncate_dim(truncate_dim, self._full_dimension())
        prompt_text = resolve_prompt(self.prompts, prompt_name, prompt, self.default_prompt_name)
        embeddings = self._embed([str(apply_prompt(prompt_text, t)) for t in texts])
        self._local.info = EncodeInfo(len(texts), 0, (), None)
        if truncate_dim is not None:
            embeddings = embeddings[:, :truncate_dim]
        if normalize_embeddings:
            embeddings = l2_normalize(embeddings)
        result = convert_array(embeddings, precision=precision, convert_to_numpy=convert_to_numpy,
                               convert_to_tensor=convert_to_tensor)
        return result[0] if single else result

    def __repr__(self) -> str:
        return f"{type(self).__name__}(folder={self.model_folder.name!r}, dim={self._full_dimension()})"


__all__ = ["StaticSentenceTransformer", "read_static", "is_static_folder"]
