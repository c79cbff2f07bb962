"""Finding or making the ONNX file a model runs from (and its tokenizer), in this order:

1. ``model_kwargs={"file_name": ...}``: that file (a sentencekit export, or a transformer-only graph);
2. sentencekit's cached full-pipeline export (``onnx/sentencekit_<key>.onnx`` beside the model, or in
   ``$SENTENCEKIT_HOME/onnx``), keyed by the model folder's content;
3. a transformer-only ``onnx/model.onnx`` as sentence-transformers / optimum export it (not for sparse
   encoders: their own export pools inside the graph, so ONNX Runtime never returns ``[b, tokens, vocab]``
   logits; a transformer-only graph still runs when ``file_name`` names it);
4. a new export (this imports torch, once), written atomically where it can be written.

``int8`` is derived from the float32 graph and cached the same way (the name may also carry the
calibration set, :func:`calibration_key`): for ONNX Runtime by calibrated dynamic
quantization (``..._int8.onnx``, :mod:`sentencekit.engines.onnx_quantize`), for OpenVINO by NNCF static
quantization (``..._ov_int8.xml`` + ``.bin``, :mod:`sentencekit.engines.openvino_quantize`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentencekit.progress import model_label, step
from sentencekit.spec.export_cache import find_export, find_transformer_onnx, folder_key, writable_export_dir

logger = logging.getLogger(__name__)


@dataclass
class Artifact:
    """The graph to run and the tokenizer file that goes with it."""

    graph: Path
    tokenizer_json: Path


def _tokenizer_beside(graph: Path, folder: Path) -> Path:
    own = graph.with_suffix(".tokenizer.json")
    return own if own.is_file() else folder / "tokenizer.json"


def export_variant(kind: str, torch_kwargs: dict[str, Any]) -> str:
    """What besides the folder decides an export: the model family and any loading kwargs (a tokenizer
    or config override changes the graph)."""
    kwargs = {k: v for k, v in torch_kwargs.items() if v not in (None, False, {})}
    model_kwargs = {k: v for k, v in (kwargs.pop("model_kwargs", None) or {}).items()
                    if k not in ("torch_dtype", "dtype", "file_name", "provider")}
    if model_kwargs:
        kwargs["model_kwargs"] = model_kwargs
    return kind + (":" + json.dumps(kwargs, sort_keys=True, default=str) if kwargs else "")


#: the int8 file of each runtime: name tag and extension (an OpenVINO IR's ``.bin`` lies beside its ``.xml``)
INT8_FORMATS = {"onnx": ("int8", ".onnx"), "openvino": ("ov_int8", ".xml")}


def calibration_key(items: list[Any] | None) -> str:
    """``""`` for the bundled calibration set, else a short hash of the given texts / pairs, so int8 graphs
    calibrated on different sets are cached as different files."""
    if not items:
        return ""
    return hashlib.sha256(json.dumps(items, default=str).encode()).hexdigest()[:10]


def int8_name(key: str, source: Path, int8_format: str = "onnx", calibration: str = "") -> str:
    """The cached int8 file name derived from the float32 graph ``source`` (export key ``key``)."""
    tag, ext = INT8_FORMATS[int8_format]
    stem = f"sentencekit_{key}" if source.name == f"sentencekit_{key}.onnx" else f"sentencekit_{key}_{source.stem}"
    return f"{stem}{'_cal' + calibration if calibration else ''}_{tag}{ext}"


def locate(folder: Path, variant: str, *, file_name: str | None, compute_dtype: str,
           export: Callable[[Path], Path], calibration: Callable[[Path, Path], dict[str, Any]] | None,
           transformer_only: bool = True, int8_format: str = "onnx", calibration_set: str = "") -> Artifact:
    """The artifact for ``folder`` (``variant`` names what else decides the export, e.g. the model
    family); ``export(target)`` writes a new float32 export, ``calibration(src, dst)`` writes the int8
    version of ``src`` (both only called when nothing cached fits; ``dst`` must appear whole or not at
    all). ``transformer_only=False``: do not fall back to a transformer-only ``onnx/model.onnx`` (step 3).
    ``int8_format``: a key of :data:`INT8_FORMATS`; ``calibration_set``: :func:`calibration_key` of the
    calibration items."""
    key = folder_key(folder, variant)
    if file_name:
        graph = find_transformer_onnx(folder, file_name)
    else:
        graph = find_export(folder, f"sentencekit_{key}.onnx")
        if graph is None and compute_dtype != "int8" and transformer_only:
            graph = find_transformer_onnx(folder)
        if graph is None:
            target = writable_export_dir(folder) / f"sentencekit_{key}.onnx"
            logger.info("Exporting %s to ONNX at %s (once; later loads reuse it).", folder, target)
            step("exporting %s to ONNX (one time, usually under a minute; later loads reuse it)...",
                 model_label(folder))
            started = time.perf_counter()
            graph = export(target)
            step("exported %s to ONNX in %.0f s: %s", model_label(folder), time.perf_counter() - started, graph)
    if compute_dtype == "int8":
        source = graph
        name = int8_name(key, source, int8_format, calibration_set)
        graph = find_export(folder, name)
        if graph is None:
            if calibration is None:
                raise ValueError("int8 is not available for this model.")
            target = writable_export_dir(folder) / name
            logger.info("Quantizing %s to int8 at %s (once; later loads reuse it).", source, target)
            step("quantizing %s to int8 (one time, calibrated against float32; later loads reuse it)...",
                 model_label(folder))
            started = time.perf_counter()
            calibration(source, target)
            step("quantized %s to int8 in %.0f s: %s", model_label(folder), time.perf_counter() - started, target)
            tokenizer = _tokenizer_beside(source, folder)
            if tokenizer.parent != folder:
                copy_atomic(tokenizer, target.with_suffix(".tokenizer.json"))
            graph = target
    return Artifact(graph, _tokenizer_beside(graph, folder))


def right_padded_graph(graph: Path) -> bool:
    """Whether the sentencekit export ``graph`` records ``"right_padding": true`` (its attention is ONNX
    Runtime's ``GroupQueryAttention``: :mod:`sentencekit.engines.onnx_attention`). Parses the protobuf once
    (the metadata sits after the weights); ``False`` for a graph without sentencekit metadata."""
    import onnx

    proto = onnx.load(str(graph), load_external_data=False)
    meta = next((p.value for p in proto.metadata_props if p.key == "sentencekit"), None)
    return bool(meta and json.loads(meta).get("right_padding"))


def copy_atomic(src: Path, dst: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.tmp-", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        shutil.copymode(src, tmp)  # mkstemp made it private; keep the source's permissions
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
