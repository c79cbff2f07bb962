"""A ``MultiVectorEncoder`` on ONNX Runtime, without torch.

The graph (exported once, with torch, by :mod:`sentencekit.engines.multivector_export`, then cached) holds the
transformer and the token ``Dense`` / ``Normalize`` steps and outputs ``token_embeddings`` ``[b, tokens, dim]``.
Around it, in NumPy, with the settings the export recorded from the torch model: each task's length limit
(one tokenizer per limit), ColBERT query expansion (:func:`sentencekit.pipeline.query_expansion.expand_queries`),
the ``MultiVectorMask`` scoring mask (:func:`sentencekit.engines.numpy_ops.scoring_mask`) and
``HierarchicalTokenPooling`` (SciPy, :func:`sentencekit.token_clusters.pool_padded`). The engine returns what the
torch engine returns for the family (token vectors and the scoring mask, or every per-input feature), as NumPy.

``compute_dtype="int8"``: the graph quantized by :mod:`sentencekit.engines.onnx_quantize`, calibrated on the
per-token cosine to float32 over real tokens (see :meth:`MultiVectorOnnxEngine._calibrate`); one int8 file per
calibration set (``calibration_texts``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentencekit.engines.fast_tokenizer import FastTokenizer
from sentencekit.engines.numpy_ops import scoring_mask
from sentencekit.engines.onnx_engine import OnnxEngine
from sentencekit.engines.onnx_quantize import GraphRunner, padded_batches
from sentencekit.engines.onnx_session import make_session, read_metadata
from sentencekit.engines.protocol import EngineOptions, Tokenized
from sentencekit.pipeline.query_expansion import expand_queries, task_max_length
from sentencekit.spec.model_spec import ModelSpec
from sentencekit.spec.multivector_source import is_retrieval_model, read_multivector_source
from sentencekit.token_clusters import pool_padded

#: module kinds after the Transformer that the exported graph and its NumPy steps run (poolings last)
_RUNS = ("Dense", "Normalize", "MultiVectorMask")


def check_exportable(spec: ModelSpec) -> None:
    """``ValueError`` (before anything is exported) for a multi-vector folder this engine cannot run: the saved
    modules must be a Transformer, then token Dense / Normalize / MultiVectorMask, then HierarchicalTokenPooling
    modules. Folders in other layouts (PyLate, Stanford ColBERT, converted encoders) always are."""
    source = read_multivector_source(spec, warn=False)  # other families: ModelFormatError
    if is_retrieval_model(spec):
        # the vision tower, the processor's rendering (prefixes, image tokens, Qwen2-VL's patch grids) and the
        # retrieval head are not in the exported text graph: refused rather than run as a text encoder
        raise ValueError(f"{spec.folder} is a *ForRetrieval late-interaction retriever (ColPali family), which the "
                         "ONNX backend does not run: use backend='torch'.")
    if source.kind != "native":
        return
    kinds = spec.module_kinds
    body = kinds[1:]
    while body and body[-1] == "HierarchicalTokenPooling":
        body = body[:-1]
    if kinds[0] != "Transformer" or any(k not in _RUNS for k in body):
        raise ValueError(f"The ONNX backend runs multi-vector models made of a Transformer, token Dense / Normalize, "
                         f"a MultiVectorMask and HierarchicalTokenPooling last; {spec.folder} is {kinds}. Use "
                         "backend='torch'.")


@dataclass
class QueryDocumentRunner(GraphRunner):
    """A calibration runner (:class:`sentencekit.engines.onnx_quantize.GraphRunner`) whose items are
    ``("query" | "document", text)``: documents tokenized by ``tokenizer``, queries by ``query_tokenizer`` and
    expanded as the engine expands them (:func:`expand_queries`); each is compared over the tokens MaxSim scores
    (real ones, and a query's expansion tokens). Use it with ``per_token=True``."""

    query_tokenizer: FastTokenizer | None = None
    expansion: dict[str, Any] | None = None
    expansion_id: int | None = None

    def calibration_batches(self, items: Sequence[Any], batch_size: int,
                            ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]]:
        """As :meth:`GraphRunner.calibration_batches`, queries first, then documents (each longest first)."""
        for task in ("query", "document"):
            tokenizer = self.query_tokenizer if task == "query" and self.query_tokenizer else self.tokenizer
            picked = np.array([i for i, (t, _) in enumerate(items) if t == task], dtype=np.int64)
            if not len(picked):
                continue
            for rows, feats in padded_batches(tokenizer, [items[i][1] for i in picked], batch_size):
                real = feats["attention_mask"].astype(bool)
                if task == "query" and self.expansion is not None:
                    feats = expand_queries(feats, self.expansion, self.expansion_id)
                    real = feats["attention_mask"].astype(bool) | feats["query_expansion_positions"]
                yield picked[rows], feats, real


class MultiVectorOnnxEngine(OnnxEngine):
    """The torch-free engine of ``MultiVectorEncoder`` (see the module docstring). Pickles as the paths it runs
    from, as :class:`OnnxEngine` does."""

    def __init__(self, spec: ModelSpec, options: EngineOptions) -> None:
        check_exportable(spec)
        super().__init__(spec, "multivector", options)

    # -- int8 -------------------------------------------------------------------------------------------------------
    def _calibrate(self, src: Path, dst: Path, items: list[Any] | None) -> dict[str, Any]:
        """Write the int8 version of ``src`` to ``dst`` (:func:`sentencekit.engines.onnx_quantize.calibrate`) and
        return its report. Each text (``items``, else the default calibration set) is run twice, as the model
        runs it by default: as a query (the saved query prompt, e.g. PyLate's ``[Q] ``, cut at the query length,
        expanded) and as a document (its prompt, cut at the document length); int8 is compared to float32 over
        the token vectors MaxSim can score (mean per-token cosine), where a pooled cosine would hide per-token
        drift."""
        from sentencekit.engines.onnx_quantize import default_calibration_texts

        texts = list(items or default_calibration_texts())
        prompts = read_multivector_source(self.spec, warn=False).prompts
        items = [(task, (prompts.get(task) or "") + text) for task in ("query", "document") for text in texts]
        return self._quantize(src, dst, self._calibration_runner(src), items)

    def _calibration_runner(self, src: Path) -> QueryDocumentRunner:
        """The runner that calibrates the float32 graph ``src``: its tokenizer cut at the query and document lengths
        its metadata records, and its query expansion."""
        meta = read_metadata(make_session(src, 1))
        settings = meta.get("multivector") or {}
        tokenizers = {}
        for task in ("query", "document"):
            tokenizers[task] = tok = self._calibration_tokenizer(src, meta)
            tok.set_max_length(task_max_length(task, max_seq_length=tok.max_length,
                                               query_length=settings.get("query_length"),
                                               document_length=settings.get("document_length"),
                                               expansion=settings.get("query_expansion")))
        return QueryDocumentRunner(tokenizers["document"], "token_embeddings", per_token=True,
                                   query_tokenizer=tokenizers["query"], expansion=settings.get("query_expansion"),
                                   expansion_id=settings.get("expansion_token_id"))

    def _open(self) -> None:
        super()._open()
        settings = self.meta.get("multivector") or {}
        self.settings = settings
        self.expansion = settings.get("query_expansion")
        self.mask = settings.get("mask")
        self.poolings: list[dict[str, Any]] = list(settings.get("poolings") or [])
        self._task_tokenizers: dict[int | None, FastTokenizer] = {}
        self._task_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for key in ("_task_tokenizers", "_task_lock", "settings", "expansion", "mask", "poolings"):
            state.pop(key, None)  # rebuilt by _open from the graph's metadata
        return state

    # -- lengths ----------------------------------------------------------------------------------------------------
    def max_seq_length_for(self, task: str | None) -> Any:
        return task_max_length(task, max_seq_length=self.max_seq_length, query_length=self.settings.get("query_length"),
                               document_length=self.settings.get("document_length"), expansion=self.expansion)

    def _tokenizer_for(self, limit: int | None) -> FastTokenizer:
        """The tokenizer cutting at ``limit`` (the model's own when that is its limit)."""
        base = self._tokenizer
        if limit == base.max_length:
            return base
        with self._task_lock:
            tok = self._task_tokenizers.get(limit)
            if tok is None:
                from tokenizers import Tokenizer

                tok = FastTokenizer(Tokenizer.from_str(base.backend.to_str()), max_length=limit,
                                    do_lower_case=base.do_lower_case, pad_id=base.pad_id, pad_type_id=base.pad_type_id,
                                    padding_side=base.padding_side, add_special_tokens=base.add_special_tokens)
                self._task_tokenizers[limit] = tok
        return tok

    # -- the pipeline's two steps -----------------------------------------------------------------------------------
    def tokenize(self, items: list[Any], task: str | None = None) -> Tokenized:
        return self._tokenizer_for(self.max_seq_length_for(task)).encode(items)

    def run(self, tokenized: Tokenized, indices: np.ndarray, *, outputs: frozenset[str], prompt_length: int = 0,
            task: str | None = None, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
        arrays = {k: v for k, v in self._tokenizer.pad(tokenized, indices).items()
                  if k in ("input_ids", "attention_mask", "token_type_ids")}
        if task == "query" and self.expansion is not None:
            arrays = expand_queries(arrays, self.expansion, self.settings.get("expansion_token_id"))
        tokens = self._session.run(["token_embeddings"], {k: v for k, v in arrays.items() if k in self._inputs})[0]
        positions = arrays.get("query_expansion_positions")
        if self.mask is not None:
            mask = scoring_mask(arrays["input_ids"], arrays["attention_mask"], positions, task, **self.mask)
        else:
            mask = arrays["attention_mask"]
        for pooling in self.poolings:
            tokens, mask = pool_padded(tokens, mask, pooling, task)
        if "*" in outputs:
            return {**arrays, "token_embeddings": tokens, "attention_mask": mask}
        return {"token_embeddings": tokens, "attention_mask": mask}

    def describe(self) -> str:
        return f"onnx={self.graph.name!r} (multi-vector), threads={self.num_threads}"


__all__ = ["MultiVectorOnnxEngine", "QueryDocumentRunner", "check_exportable"]
