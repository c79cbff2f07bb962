"""The ONNX Runtime engine: a model's exported graph, run on the CPU without torch.

The first load exports the whole embedder pipeline (Transformer -> Pooling -> Dense -> Normalize) to one
graph, a cross-encoder's sequence-classification transformer (output ``logits``), or a SPLADE sparse
encoder with its pooling (output ``sentence_embedding`` ``[b, vocab]``), cached beside the model or under
``$SENTENCEKIT_HOME/onnx`` (see :mod:`sentencekit.engines.onnx_artifacts`); later loads need only
``tokenizers``, ``onnxruntime`` and NumPy. A transformer-only graph (as sentence-transformers / optimum
export it) also runs: pooling, Dense and Normalize (or SPLADE pooling) then run in NumPy.

``compute_dtype``: ``"float32"`` (outputs as the torch engine's) or ``"int8"`` (calibrated dynamic
quantization). bf16 has no fast ONNX Runtime kernels on x86 CPUs.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from sentencekit.engines.fast_tokenizer import FastTokenizer
from sentencekit.engines.numpy_ops import NumpyDense, l2_normalize, pool, splade_pool
from sentencekit.engines.onnx_artifacts import Artifact, calibration_key, export_variant, locate, right_padded_graph
from sentencekit.engines.onnx_session import make_session, read_metadata
from sentencekit.engines.protocol import Engine, EngineOptions, Tokenized, check_num_threads
from sentencekit.spec.model_spec import ModelSpec

logger = logging.getLogger(__name__)

COMPUTE_DTYPES = ("auto", "float32", "int8", "bfloat16")
_DTYPE_ALIASES = {"fp32": "float32", "float": "float32", "qint8": "int8", "bf16": "bfloat16", None: "auto"}


def check_compute_dtype(value: str | None) -> str:
    """The canonical name of a ``compute_dtype`` (``None`` -> ``"auto"``); ``ValueError`` for others."""
    value = _DTYPE_ALIASES.get(value, value)
    if value not in COMPUTE_DTYPES:
        raise ValueError(f"Unknown compute_dtype {value!r}; choose from {', '.join(COMPUTE_DTYPES)}.")
    return value


def cpu_compute_dtype(value: str | None, what: str) -> str:
    """``float32`` or ``int8`` for an engine that runs NumPy/ONNX Runtime kernels on the CPU."""
    dtype = check_compute_dtype(value)
    if dtype == "bfloat16":
        raise ValueError(f"{what} has no fast bf16 kernels on x86 CPUs (it would run far slower than float32). "
                         "Use backend='torch', compute_dtype='bfloat16' (fast where the CPU has AVX-512 BF16 / "
                         "AMX), or compute_dtype='int8' here.")
    return "int8" if dtype == "int8" else "float32"


class OnnxEngine(Engine):
    """An exported graph on ONNX Runtime, for an embedder (``family="embedder"``), a cross-encoder
    (``family="reranker"``) or a SPLADE sparse encoder (``family="sparse"``). Pickles as the paths it runs
    from (a worker reopens its own session)."""

    backend = "onnx"
    #: export causal decoders' attention as ONNX Runtime's GroupQueryAttention (sentencekit.engines.onnx_attention)
    fused_attention = True

    def __init__(self, spec: ModelSpec, family: str, options: EngineOptions) -> None:
        if options.device is not None and str(options.device) != "cpu":
            raise ValueError(f"The ONNX backend runs on the CPU; got device={options.device!r}. Use backend='torch' "
                             "for GPUs.")
        if family == "sparse" and not spec.is_splade:  # refused before anything is exported or loaded
            raise ValueError(f"The ONNX backend runs SPLADE sparse encoders (Transformer(fill-mask) -> SpladePooling, "
                             f"also as a Router's document route, with a SparseStaticEmbedding query route); "
                             f"{spec.folder} is {spec.module_kinds}"
                             f"{'' if spec.layout != 'transformers' else ' (not a masked language model)'}: CSR "
                             "(SparseAutoEncoder) and other sparse pipelines run on backend='torch'.")
        self.spec = spec
        self.family = family
        self.compute_dtype = cpu_compute_dtype(options.compute_dtype,
                                               "OpenVINO" if self.backend == "openvino" else "ONNX Runtime")
        if self.compute_dtype == "int8":
            from sentencekit.engines.cpu import cpu_features

            if not cpu_features().vnni:
                logger.warning("This CPU has no VNNI/AMX int8 instructions: int8 runs, but gains less over float32.")
        # padded tokens per input of ``batch_size``: 32 for embedders, 16 for pairs. Both come from ad-hoc sweeps
        # on 2 CPU cores that are not in benchmarks/ (pairs: 384-768 tokens per batch ran fastest over 300
        # sample pairs of ~59 tokens, by a few percent); compare_peers.py measures the result, not the choice
        self.batch_tokens_per_text = 16 if family == "reranker" else 32
        artifact = self._locate(options)
        self.graph, self.tokenizer_json = artifact.graph, artifact.tokenizer_json
        self._num_threads = options.num_threads
        self._open()
        if options.max_length is not None:
            self.max_seq_length = options.max_length

    # -- building ------------------------------------------------------------------------------------------
    def _locate(self, options: EngineOptions) -> Artifact:
        """The graph to run (cached, or exported / quantized now) and its tokenizer."""
        return locate(self.spec.folder, self._variant(options), file_name=(options.model_kwargs or {}).get("file_name"),
                      compute_dtype=self.compute_dtype, export=lambda target: self._export(target, options),
                      calibration=lambda src, dst: self._calibrate(src, dst, options.calibration),
                      transformer_only=self.family in ("embedder", "reranker"), int8_format=self.backend,
                      calibration_set=calibration_key(options.calibration))

    def _new_session(self) -> Any:
        """The runtime session of :attr:`graph` (subclasses run the same graph on another runtime)."""
        return make_session(self.graph, self._num_threads)

    def _session_metadata(self) -> dict[str, Any]:
        return read_metadata(self._session)

    def _variant(self, options: EngineOptions) -> str:
        kind = self.family if self.spec.route_name is None else f"{self.family}:route={self.spec.route_name}"
        return export_variant(kind, options.torch_kwargs(self.family))

    def _export(self, target: Path, options: EngineOptions) -> Path:
        if self.family == "embedder" and not self.spec.runs_without_torch:  # refuse before torch loads it
            raise ValueError(f"The ONNX backend exports Transformer -> Pooling -> Dense -> Normalize pipelines; "
                             f"{self.spec.folder} is {self.spec.module_kinds}. Use backend='torch'.")

        from sentencekit.engines.onnx_export import export_spec

        return export_spec(self.spec, self.family, target, options, fused_attention=self.fused_attention)

    def _calibrate(self, src: Path, dst: Path, items: list[Any] | None) -> dict[str, Any]:
        """Write the int8 version of the float32 graph ``src`` to ``dst``, calibrated on ``items`` (texts;
        pairs for cross-encoders; ``None``: the bundled ones); returns the quantization report."""
        from sentencekit.engines.onnx_quantize import GraphRunner, calibration_items

        runner = GraphRunner(self._calibration_tokenizer(src, {}),
                             "logits" if self.family == "reranker" else "sentence_embedding")
        # sparse rows calibrate like dense ones: cosine to the float32 rows
        return self._quantize(src, dst, runner, calibration_items(self.family == "reranker", items))

    def _quantize(self, src: Path, dst: Path, runner: Any, items: list[Any]) -> dict[str, Any]:
        """The int8 method of this runtime: calibrated dynamic quantization for ONNX Runtime
        (:func:`sentencekit.engines.onnx_quantize.calibrate`)."""
        from sentencekit.engines.onnx_quantize import calibrate

        return calibrate(src, dst, runner, items)

    def _calibration_tokenizer(self, src: Path, meta: dict[str, Any]) -> FastTokenizer:
        """The tokenizer of the float32 graph ``src`` (its own tokenizer file beside it, else the model's), with the
        settings in ``meta`` (see :meth:`_make_tokenizer`)."""
        tokenizer_json = src.with_suffix(".tokenizer.json")
        if not tokenizer_json.is_file():
            tokenizer_json = self.spec.transformer_folder / "tokenizer.json"
        tokenizer = self._make_tokenizer(tokenizer_json, meta)
        if right_padded_graph(src):  # GroupQueryAttention graphs: calibrate on the batches they run on
            tokenizer.padding_side = "right"
        return tokenizer

    def _make_tokenizer(self, tokenizer_json: Path, meta: dict[str, Any]) -> FastTokenizer:
        """The tokenizer, with the exported settings (max length, lower-casing, pad token) winning over the
        folder's when the graph carries them."""
        tok = FastTokenizer.from_file(tokenizer_json, self.spec.transformer_folder,
                                      max_length=meta.get("max_seq_length", self.spec.max_seq_length),
                                      do_lower_case=meta.get("do_lower_case", self.spec.do_lower_case))
        if "pad_id" in meta:
            tok.pad_id = int(meta["pad_id"])
            tok.padding_side = meta.get("padding_side", "right")
        return tok

    def _open(self) -> None:
        self._session = self._new_session()
        self.meta = self._session_metadata()
        self._inputs = [i.name for i in self._session.get_inputs()]
        outputs = [o.name for o in self._session.get_outputs()]
        self._tokenizer = self._make_tokenizer(self.tokenizer_json, self.meta)
        self._prompt_lengths: dict[str, int] = {}
        self._lock = threading.Lock()
        if self.family == "reranker":
            self._logits = "logits" if "logits" in outputs else outputs[0]
            return
        self.full_pipeline = self.meta.get("kind") == self.family
        if self.family == "sparse":
            if not self.full_pipeline:  # a transformer-only fill-mask graph named by file_name: pool in NumPy
                self._token_output = "logits" if "logits" in outputs else outputs[0]
            return
        if not self.full_pipeline:
            if not self.spec.runs_without_torch:
                raise ValueError(f"{self.graph} holds only the transformer, and this model's modules "
                                 f"{self.spec.module_kinds} cannot run in NumPy after it.")
            self._dense = [NumpyDense(d.path, d.activation) for d in self.spec.dense]
            self._token_output = outputs[0]

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("_session", "_lock", "_tokenizer")}
        state["max_seq_length"] = self.max_seq_length
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        max_length = state.pop("max_seq_length")
        self.__dict__.update(state)
        self._open()
        if max_length != self.max_seq_length:
            self.max_seq_length = max_length

    # -- the pipeline's two steps ----------------------------------------------------------------------------
    def tokenize(self, items: list[Any], task: str | None = None) -> Tokenized:
        return self._tokenizer.encode(items)

    def run(self, tokenized: Tokenized, indices: np.ndarray, *, outputs: frozenset[str], prompt_length: int = 0,
            task: str | None = None, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
        features = {k: v for k, v in self._padded_features(tokenized, indices).items() if k in self._inputs}
        if self.family == "reranker":
            return {"scores": self._session.run([self._logits], features)[0]}
        if self.family == "sparse":
            return {"sentence_embedding": self._sparse_rows(features, outputs)}
        want_tokens = outputs != {"sentence_embedding"}
        if self.full_pipeline:
            if "prompt_length" in self._inputs:
                features["prompt_length"] = np.array(prompt_length, dtype=np.int64)
            names = ["sentence_embedding", "token_embeddings"] if want_tokens else ["sentence_embedding"]
            out = dict(zip(names, self._session.run(names, features)))
        else:
            tokens = self._session.run([self._token_output], features)[0]
            emb = pool(tokens, features["attention_mask"], self.spec.pooling_modes,
                       prompt_length if not self.spec.include_prompt else 0)
            for dense in self._dense:
                emb = dense(emb)
            if self.spec.normalize:
                emb = l2_normalize(emb)
            out = {"sentence_embedding": emb.astype(np.float32, copy=False), "token_embeddings": tokens}
        if not want_tokens:
            out.pop("token_embeddings", None)
        elif "*" not in outputs:  # token_embeddings mode trims each row by its mask
            out["attention_mask"] = features["attention_mask"]
        return out

    def _padded_features(self, tokenized: Tokenized, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The padded batch: on the tokenizer's side, or on the right for a graph whose attention masks
        only keys after each row's length (``GroupQueryAttention``: :mod:`sentencekit.engines.onnx_attention`)."""
        if self.meta.get("right_padding"):
            tok = self._tokenizer
            return tokenized.pad(indices, pad_id=tok.pad_id, pad_type_id=tok.pad_type_id, padding_side="right")
        return self._tokenizer.pad(tokenized, indices)

    def _sparse_rows(self, features: dict[str, np.ndarray], outputs: frozenset[str]) -> np.ndarray:
        """SPLADE rows ``[b, vocab]`` float32 of a padded batch."""
        if outputs != {"sentence_embedding"}:
            raise ValueError("A sparse encoder outputs sentence embeddings only.")
        if self.full_pipeline:
            return self._session.run(["sentence_embedding"], features)[0]
        logits = self._session.run([self._token_output], features)[0]
        settings = self.spec.splade_pooling
        return splade_pool(logits, features["attention_mask"], settings["pooling_strategy"],
                           settings["activation_function"])

    # -- what the model reports -------------------------------------------------------------------------------
    @property
    def session(self) -> Any:
        """The ``onnxruntime.InferenceSession``."""
        return self._session

    @property
    def tokenizer(self) -> FastTokenizer:
        return self._tokenizer

    @property
    def do_lower_case(self) -> bool:
        return self._tokenizer.do_lower_case

    @property
    def num_threads(self) -> int:
        """Intra-op threads of the session; setting it rebuilds the session."""
        return int(self._session.get_session_options().intra_op_num_threads)

    @num_threads.setter
    def num_threads(self, value: int | None) -> None:
        check_num_threads(value)
        self._num_threads = value
        self._reopen_sessions()

    def _reopen_sessions(self) -> None:
        """Rebuild the session(s) for a new :attr:`num_threads` (an engine with more graphs reopens them too)."""
        self._session = self._new_session()

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
    def include_prompt(self) -> bool:
        return bool(self.meta.get("include_prompt", self.spec.include_prompt))

    def prompt_length(self, prompt: str, task: str | None = None) -> int:
        if prompt not in self._prompt_lengths:
            ids = self._tokenizer.encode([prompt]).ids[0]
            length = len(ids)
            if length and int(ids[-1]) in self._tokenizer.all_special_ids:
                length -= 1
            self._prompt_lengths[prompt] = length
        return self._prompt_lengths[prompt]

    def dimension(self) -> int | None:
        if self.family == "reranker":
            return None
        if self.meta.get("dim"):
            return int(self.meta["dim"])
        if self.family == "sparse":
            vocab = self.spec.hf_config.get("vocab_size")
            return int(vocab) if vocab else None
        dense = self.spec.dense
        if dense:
            return dense[-1].out_features
        width = self._session.get_outputs()[0].shape[-1]
        word = self.spec.word_dim or (width if isinstance(width, int) else None)
        return int(word) * len(self.spec.pooling_modes) if word else None

    @property
    def num_labels(self) -> int | None:
        """Cross-encoders: outputs per pair, as the export recorded it."""
        return self.meta.get("num_labels")

    @property
    def saved_activation(self) -> str | None:
        """Cross-encoders: the activation the export recorded (a torch class path)."""
        return self.meta.get("activation_fn")

    def fingerprint(self) -> str:
        """A float32 sentencekit export gives the fingerprint of the torch model it came from (same outputs,
        so an index built on either backend opens on the other); an int8 graph or a foreign
        (transformer-only) export is identified by its own bytes and the model folder."""
        from sentencekit.fingerprint import derived_fingerprint, file_fingerprint

        base = self.meta.get("fingerprint")
        if base is not None and "quantization" not in self.meta:
            changed = self.max_seq_length != self.meta.get("max_seq_length")
            return derived_fingerprint(base, *([f"max_seq_length={self.max_seq_length}"] if changed else []))
        if getattr(self, "_own_fingerprint", None) is None:
            from sentencekit.spec.export_cache import folder_key

            self._own_fingerprint = file_fingerprint("onnx", self.meta, folder_key(self.spec.folder),
                                                     files=(self.graph, self.tokenizer_json))
        return derived_fingerprint(self._own_fingerprint, f"max_seq_length={self.max_seq_length}")

    def describe(self) -> str:
        return f"onnx={self.graph.name!r}, threads={self.num_threads}"


__all__ = ["OnnxEngine", "check_compute_dtype", "cpu_compute_dtype"]
