"""Export a torch model to ONE ONNX graph (needs torch; used once per model, then cached).

Embedders: Transformer -> Pooling (every mode; ``include_prompt=False`` through a ``prompt_length``
input) -> Dense -> Normalize, outputs ``sentence_embedding`` and ``token_embeddings``. Rerankers: the
sequence-classification transformer, output ``logits`` (the activation runs in NumPy). Sparse encoders
(SPLADE): the fill-mask transformer -> ``SpladePooling`` inside the graph, output ``sentence_embedding``
``[b, vocab]`` (the ``[b, tokens, vocab]`` logits never leave ONNX Runtime).

Files are written to a temporary name and renamed into place, so a reader never sees half a file; the
graph carries its settings (input names, max_seq_length, ...) as ONNX metadata under ``sentencekit``.
The graph is left unfused: ONNX Runtime's own session optimizations (level ALL) do the fusions that
pay off on CPUs; its offline BERT fusions (``onnxruntime.transformers.optimizer``, model_type "bert":
fused Attention or MultiHeadAttention, SkipLayerNorm, BiasGelu) cost more CPU time on long passages
(``benchmarks/onnx_profile.py --variants export,bert-fused,bert-mha --rows 1,4,16 --threads 1``,
all-MiniLM-L6-v2, 32 passages of ~230 tokens, 2 shared AMD EPYC cores: 935 / 1018 / 1083 ms CPU at 1 row a
batch, 1000 / 1064 / 1119 ms at 4). ONNX Runtime's CPU flash attention (MultiHeadAttention) only runs
without a padding mask, so it would not lower the memory of padded batches either. Causal decoders are the
exception: their attention is exported as ONNX Runtime's ``GroupQueryAttention`` (one node a layer, no
n x n tensors; :mod:`sentencekit.engines.onnx_attention`), except for OpenVINO, which cannot read it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sentencekit.engines.onnx_attention import FUSED_ATTENTION, FusedAttentionRefused, export_attention
from sentencekit.engines.protocol import EngineOptions
from sentencekit.modules.pooling import pool_tokens
from sentencekit.spec.model_spec import ModelSpec

logger = logging.getLogger(__name__)
OPSET = 17


class UnsupportedModelError(ValueError):
    """This model's modules cannot be exported (the ONNX backend supports Transformer, Pooling, Dense,
    Normalize)."""


class EmbeddingGraph(nn.Module):
    """The whole embedding pipeline of a torch ``SentenceTransformer`` as one traceable module."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        from sentencekit.modules import Dense, Normalize, Pooling, Transformer

        modules = list(model)
        if not modules or not isinstance(modules[0], Transformer) or \
                modules[0].transformer_task != "feature-extraction":
            raise UnsupportedModelError(
                f"The ONNX backend exports Transformer -> Pooling -> Dense -> Normalize pipelines; this model is "
                f"{[type(m).__name__ for m in modules]}. Use backend='torch'.")
        self.transformer = modules[0].auto_model
        self.no_cache = "use_cache" in modules[0]._forward_params
        self.pooling: Pooling | None = None
        self.dense = nn.ModuleList()
        self.normalize = False
        for module in modules[1:]:
            if isinstance(module, Pooling) and self.pooling is None and not len(self.dense):
                self.pooling = module
            elif isinstance(module, Dense) and self.pooling is not None:
                self.dense.append(module)
            elif isinstance(module, Normalize):
                self.normalize = True
            else:
                raise UnsupportedModelError(
                    f"The ONNX backend cannot export {type(module).__name__} at this place in "
                    f"{[type(m).__name__ for m in modules]}. Use backend='torch'.")
        if self.pooling is None:
            raise UnsupportedModelError("The ONNX backend needs a Pooling module after the Transformer.")
        self.modes = self.pooling.pooling_modes
        self.include_prompt = self.pooling.include_prompt

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None,
                prompt_length: Tensor | None = None) -> tuple[Tensor, Tensor]:
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        if self.no_cache:
            kwargs["use_cache"] = False  # a decoder: no key/value cache in the graph (see Transformer.forward)
        tokens = self.transformer(input_ids=input_ids, attention_mask=attention_mask, return_dict=True,
                                  **kwargs)[0]
        emb = pool_tokens(tokens, attention_mask, self.modes, prompt_length=prompt_length)
        for dense in self.dense:
            emb = dense.activation(dense.linear(emb))
        if self.normalize:
            emb = nn.functional.normalize(emb, p=2, dim=1)
        return emb, tokens


class ClassifierGraph(nn.Module):
    """A sequence-classification transformer: token ids in, logits out."""

    def __init__(self, auto_model: nn.Module) -> None:
        super().__init__()
        self.transformer = auto_model

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        return self.transformer(input_ids=input_ids, attention_mask=attention_mask, return_dict=True,
                                **kwargs).logits


class SpladeGraph(nn.Module):
    """A fill-mask transformer and its ``SpladePooling`` as one traceable module: token ids in,
    ``sentence_embedding`` ``[b, vocab]`` out (``SpladePooling``'s math: ``x = logits * mask``, then
    ``log1p(relu(x))`` (twice ``log1p`` for ``log1p_relu``), max or sum over tokens; padding gives 0)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        from sentencekit.modules import SpladePooling, Transformer

        modules = list(model)
        if len(modules) != 2 or not isinstance(modules[0], Transformer) or \
                modules[0].transformer_task != "fill-mask" or not isinstance(modules[1], SpladePooling):
            raise UnsupportedModelError(
                f"The ONNX backend exports sparse encoders made of Transformer(fill-mask) -> SpladePooling (SPLADE; "
                f"also as the document route of a Router); this model is {[type(m).__name__ for m in modules]}. "
                "Use backend='torch'.")
        self.transformer = modules[0].auto_model
        self.strategy = modules[1].pooling_strategy
        self.twice = modules[1].activation_function == "log1p_relu"

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        logits = self.transformer(input_ids=input_ids, attention_mask=attention_mask, return_dict=True,
                                  **kwargs).logits
        x = logits * attention_mask.unsqueeze(-1).to(logits.dtype)
        if self.strategy == "max":
            # relu and log1p are non-decreasing, so they commute with max: pooling first applies them to
            # [b, vocab] instead of [b, tokens, vocab] (same numbers, a third of the elementwise work)
            x = x.amax(dim=1)
        x = torch.log1p(torch.relu(x))
        if self.twice:
            x = torch.log1p(x)
        return x if self.strategy == "max" else x.sum(dim=1)


def _input_names(transformer_module: Any) -> list[str]:
    names = ["input_ids", "attention_mask"]
    model_inputs = getattr(transformer_module.tokenizer, "model_input_names", ["token_type_ids"])
    if "token_type_ids" in transformer_module._forward_params and "token_type_ids" in model_inputs:
        names.append("token_type_ids")
    return names


def _sample_inputs(transformer_module: Any, names: list[str], pairs: bool) -> tuple[Tensor, ...]:
    texts = [("hello world", "a second text"), ("a longer first text of a pair", "b")] if pairs else \
        ["hello world", "a somewhat longer sentence for tracing"]
    features = transformer_module.tokenize(texts)
    return tuple(features[n] for n in names)


@contextlib.contextmanager
def _quiet_export():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        level = logging.getLogger("torch.onnx").level
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        try:
            yield
        finally:
            logging.getLogger("torch.onnx").setLevel(level)


def _export(module: nn.Module, args: tuple, path: Path, input_names: list[str], output_names: list[str],
            dynamic_axes: dict[str, dict[int, str]]) -> None:
    # the contrib domain only where GroupQueryAttention is traced: the exporter prints a warning (from C++, past
    # the warnings filter) on every export that declares a domain it does not use
    fused = any(getattr(getattr(m, "config", None), "_attn_implementation", None) == FUSED_ATTENTION
                for m in module.modules())
    with _quiet_export(), torch.inference_mode(False), torch.no_grad():
        try:
            torch.onnx.export(module.eval(), args, str(path), dynamo=False, opset_version=OPSET,
                              input_names=input_names, output_names=output_names, dynamic_axes=dynamic_axes,
                              do_constant_folding=True, custom_opsets={"com.microsoft": 1} if fused else None)
        except Exception as error:  # the exporter's errors name operators, not the model or the way out
            inner = getattr(module, "transformer", module)
            raise UnsupportedModelError(
                f"Exporting {type(inner).__name__} to ONNX failed ({type(error).__name__}: {error}). This "
                "architecture does not export with torch.onnx here: load the model with backend='torch' (the "
                "default).") from error


def export_embedder(model: Any, target: Path, meta: dict[str, Any]) -> Path:
    """Export a torch ``SentenceTransformer`` to ``target`` (atomically) and return it."""
    graph = EmbeddingGraph(model)
    transformer = model[0]
    names = _input_names(transformer)
    args: tuple = _sample_inputs(transformer, names, pairs=False)
    if not graph.include_prompt:
        names = [*names, "prompt_length"]
        if "token_type_ids" not in names:
            args = (*args, None)
        args = (*args, torch.tensor(0, dtype=torch.int64))
    axes = {n: {0: "batch", 1: "sequence"} for n in names if n != "prompt_length"}
    axes["sentence_embedding"] = {0: "batch"}
    axes["token_embeddings"] = {0: "batch", 1: "sequence"}
    config = transformer.auto_model.config
    meta = {**meta, "kind": "embedder", "inputs": names, "outputs": ["sentence_embedding", "token_embeddings"],
            "dim": int(model.engine.dimension() or 0), "include_prompt": graph.include_prompt,
            "max_seq_length": transformer.max_seq_length, "do_lower_case": transformer.do_lower_case,
            "max_position_embeddings": getattr(config, "max_position_embeddings", None)}
    return _write(graph, args, target, names, ["sentence_embedding", "token_embeddings"], axes, meta, transformer)


def export_reranker(model: Any, target: Path, meta: dict[str, Any]) -> Path:
    """Export a torch ``CrossEncoder`` to ``target`` (atomically) and return it."""
    transformer = model[0]
    names = _input_names(transformer)
    args = _sample_inputs(transformer, names, pairs=True)
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["logits"] = {0: "batch"}
    config = transformer.auto_model.config
    meta = {**meta, "kind": "reranker", "inputs": names, "outputs": ["logits"], "num_labels": int(config.num_labels),
            "max_seq_length": transformer.max_seq_length, "do_lower_case": transformer.do_lower_case,
            "max_position_embeddings": getattr(config, "max_position_embeddings", None)}
    return _write(ClassifierGraph(transformer.auto_model), args, target, names, ["logits"], axes, meta, transformer)


def export_sparse(model: Any, target: Path, meta: dict[str, Any]) -> Path:
    """Export a torch SPLADE ``SparseEncoder`` (Transformer(fill-mask) -> SpladePooling) to ``target``
    (atomically) and return it. Raises :class:`UnsupportedModelError` for other sparse pipelines."""
    graph = SpladeGraph(model)
    transformer = model[0]
    names = _input_names(transformer)
    args = _sample_inputs(transformer, names, pairs=False)
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["sentence_embedding"] = {0: "batch"}
    config = transformer.auto_model.config
    meta = {**meta, "kind": "sparse", "inputs": names, "outputs": ["sentence_embedding"],
            "dim": int(config.vocab_size), "pooling_strategy": graph.strategy,
            "activation_function": model[1].activation_function,
            "max_seq_length": transformer.max_seq_length, "do_lower_case": transformer.do_lower_case,
            "max_position_embeddings": getattr(config, "max_position_embeddings", None)}
    return _write(graph, args, target, names, ["sentence_embedding"], axes, meta, transformer)


def _write(graph: nn.Module, args: tuple, target: Path, names: list[str], outputs: list[str],
           axes: dict[str, dict[int, str]], meta: dict[str, Any], transformer: Any | None) -> Path:
    """Export ``graph`` to ``target`` atomically, with ``meta``; the tokenizer of ``transformer`` beside it
    (``None``: a graph that takes no token ids, e.g. an image tower)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=target.parent) as tmp:
        raw = Path(tmp) / "raw.onnx"
        _export(graph, args, raw, names, outputs, axes)
        final = Path(tmp) / "final.onnx"
        set_metadata(raw, final, meta)
        if transformer is not None:
            tokenizer_file = target.with_suffix(".tokenizer.json")
            save_tokenizer_json(transformer.tokenizer, Path(tmp) / "tokenizer.json")
            os.replace(Path(tmp) / "tokenizer.json", tokenizer_file)  # before the graph: a graph implies its tokenizer
        os.replace(final, target)
    return target


def set_metadata(src: Path, dst: Path, meta: dict[str, Any]) -> None:
    """Copy an ONNX file, storing ``meta`` as JSON under the ``sentencekit`` metadata key; a graph with
    ``GroupQueryAttention`` nodes also records ``"right_padding": true`` (that op masks keys after each row's
    length only: :mod:`sentencekit.engines.onnx_attention`)."""
    import onnx

    proto = onnx.load(str(src))
    if any(node.op_type == "GroupQueryAttention" for node in proto.graph.node):
        meta = {**meta, "right_padding": True}
    for prop in list(proto.metadata_props):
        if prop.key == "sentencekit":
            proto.metadata_props.remove(prop)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "sentencekit", json.dumps(meta, sort_keys=True)
    onnx.save(proto, str(dst))


def save_tokenizer_json(tokenizer: Any, path: Path) -> None:
    """The Rust tokenizer behind a transformers fast tokenizer, as it tokenizes for the torch path."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise UnsupportedModelError("The ONNX backend needs a fast (Rust) tokenizer; this model has a slow one.")
    spec = json.loads(backend.to_str())
    spec["truncation"], spec["padding"] = None, None
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")


def _tokenizer_meta(transformer: Any) -> dict[str, Any]:
    tok = transformer.tokenizer
    pad_id = getattr(tok, "pad_token_id", None)
    return {"pad_id": int(pad_id) if pad_id is not None else 0,
            "padding_side": str(getattr(tok, "padding_side", "right") or "right")}


def _export_kwargs(torch_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Loading kwargs for the export: the ONNX graph is float32 (int8 is derived from it), and
    ``file_name`` / ``provider`` only choose files and providers of the ONNX backend."""
    kwargs = {k: v for k, v in torch_kwargs.items() if v is not None and v is not False}
    model_kwargs = {k: v for k, v in (kwargs.get("model_kwargs") or {}).items()
                    if k not in ("torch_dtype", "dtype", "file_name", "provider")}
    kwargs["model_kwargs"] = model_kwargs or None
    return {k: v for k, v in kwargs.items() if v is not None}


def export_spec(spec: ModelSpec, family: str, target: Path, options: EngineOptions, *,
                fused_attention: bool = True) -> Path:
    """Load the model ``spec`` describes on the torch engine (float32, CPU) and export it to ``target``:
    the whole pipeline of an embedder (one route of it, for a Router model's route spec), or a
    cross-encoder's classifier, or a SPLADE sparse encoder with its pooling, or a multi-vector model's
    transformer with its token Dense / Normalize (:mod:`sentencekit.engines.multivector_export`). The graph
    records the torch model's fingerprint. ``fused_attention``: causal decoders' attention as ONNX Runtime's
    ``GroupQueryAttention`` (:mod:`sentencekit.engines.onnx_attention`; embedders, rerankers and sparse
    encoders, whose engine pads on the right for it); ``False`` (OpenVINO) or any other model: MatMul +
    Softmax."""
    model = torch_model_for_export(spec, family, options)
    meta = {"source": str(spec.folder), "fingerprint": model.fingerprint(), **_tokenizer_meta(model[0])}
    if family == "reranker":
        meta["activation_fn"] = _activation_path(model.activation_fn)
    if family == "multivector":
        from sentencekit.engines.multivector_export import export_multivector as exporter
    else:
        exporter = {"embedder": export_embedder, "sparse": export_sparse}.get(family, export_reranker)
    auto_model = getattr(model[0], "auto_model", None)  # None: the graph class refuses it clearly
    fused = fused_attention and family in ("embedder", "reranker", "sparse")
    if fused:
        with export_attention(auto_model, fused=True) as chosen:
            try:
                return exporter(model, target, meta)
            except UnsupportedModelError as error:
                if chosen != FUSED_ATTENTION or not _refused(error):
                    raise
                logger.debug("plain attention for %s: %s", spec.folder, error.__cause__)
    with export_attention(auto_model, fused=False):
        return exporter(model, target, meta)


def _refused(error: BaseException) -> bool:
    """Whether ``error`` (or an exception it was raised from) is :class:`FusedAttentionRefused`."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, FusedAttentionRefused):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def torch_model_for_export(spec: ModelSpec, family: str, options: EngineOptions) -> Any:
    """The model ``spec`` describes, of ``family``, on the torch engine as exports load it: float32, CPU, in
    eval mode, with the loading kwargs that decide a graph (:func:`_export_kwargs`)."""
    kwargs = _export_kwargs(options.torch_kwargs(family))
    build = EngineOptions(device="cpu", compute_dtype="float32",
                          trust_remote_code=kwargs.get("trust_remote_code", False),
                          model_kwargs=kwargs.get("model_kwargs"), tokenizer_kwargs=kwargs.get("tokenizer_kwargs"),
                          config_kwargs=kwargs.get("config_kwargs"), num_labels=kwargs.get("num_labels"))
    if family == "embedder":
        from sentencekit.engines.torch_engine import load_embedder_modules
        from sentencekit.families.embedder import SentenceTransformer

        modules, _ = load_embedder_modules(spec, build)
        model: Any = SentenceTransformer(modules=modules, device="cpu")
    elif family == "sparse":
        from sentencekit.engines.torch_engine import load_sparse_modules
        from sentencekit.families.sparse import SparseEncoder

        modules, _ = load_sparse_modules(spec, build)
        model = SparseEncoder(modules=modules, device="cpu")
    elif family == "multivector":
        from sentencekit.engines.multivector_modules import load_multivector_modules
        from sentencekit.families.multivector import MultiVectorEncoder

        modules, _ = load_multivector_modules(spec, build)
        model = MultiVectorEncoder(modules=modules, device="cpu")
    else:
        from sentencekit.families.reranker import CrossEncoder

        model = CrossEncoder(str(spec.folder), device="cpu", **kwargs)
    model.eval()
    return model


def _activation_path(fn: Any) -> str:
    from sentencekit.modules.activations import activation_name

    return activation_name(fn) if fn is not None else "torch.nn.modules.linear.Identity"
