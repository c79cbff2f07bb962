"""The OpenVINO engine (``backend="openvino"``): the ONNX engine's pipeline with OpenVINO's CPU runtime in
place of ONNX Runtime.

Everything but running the graph is the ONNX engine's (:class:`~sentencekit.engines.onnx_engine.OnnxEngine`):
the tokenizer, NumPy pooling / Dense / Normalize after a transformer-only graph, the export and its cache
(OpenVINO compiles the very ``.onnx`` file ``backend="onnx"`` exports and caches, with ``Core.read_model``;
but for a causal decoder, whose ONNX export holds ONNX Runtime's ``GroupQueryAttention``, a plain-attention
export of its own: :meth:`OpenVinoEngine._variant`), fingerprints and pickling. Runs embedders (also
sentence-transformers' transformer-only IR), cross-encoders and SPLADE sparse encoders.

``compute_dtype="int8"``: NNCF static post-training quantization of that float32 graph into an OpenVINO IR
(:mod:`sentencekit.engines.openvino_quantize`; what sentence-transformers'
``export_static_quantized_openvino_model`` makes), calibrated on ``calibration_texts`` /
``calibration_pairs`` or the bundled texts, and cached beside the export as ``sentencekit_<key>[_cal<hash>]
_ov_int8.xml`` + ``.bin`` (:mod:`sentencekit.engines.onnx_artifacts`), so only the first load needs NNCF
(``ImportError`` with the pip command without it). ONNX Runtime's dynamic int8 graph is not used here:
OpenVINO runs it at half ONNX Runtime's speed, where the static one runs faster than ONNX Runtime's int8.

Which graph runs, in this order:

1. ``model_kwargs={"file_name": ..., "subfolder": ...}``: that file, tried as given and under ``openvino/``
   (as sentence-transformers resolves it): an OpenVINO IR ``.xml`` (``.bin`` beside it) or an ``.onnx`` file;
2. ``openvino/openvino_model.xml`` (``openvino/openvino_model_qint8_quantized.xml`` for ``compute_dtype="int8"``),
   as :meth:`OpenVinoEngine.save_folder` and sentence-transformers / optimum-intel write them; those hold only
   the transformer (output ``last_hidden_state``, pooled in NumPy), sentencekit's hold the whole pipeline;
3. the ONNX backend's graph (cached export, ``onnx/model.onnx``, or a new export; for int8 its cached or new
   NNCF-quantized IR).

Settings: ``num_threads`` (``INFERENCE_NUM_THREADS``), ``model_kwargs={"ov_config": {...}}`` (OpenVINO CPU
properties, or a JSON file path) over the defaults of :data:`~sentencekit.engines.openvino_session.DEFAULT_CONFIG`
(``PERFORMANCE_HINT=LATENCY``, ``INFERENCE_PRECISION_HINT=f32``: no silent bf16 on AVX-512 BF16 / AMX CPUs).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from typing import Any

from sentencekit.engines.onnx_artifacts import Artifact, _tokenizer_beside, right_padded_graph
from sentencekit.engines.onnx_engine import OnnxEngine
from sentencekit.engines.openvino_session import OpenVinoSession, require_openvino, save_ir
from sentencekit.engines.protocol import EngineOptions
from sentencekit.spec.export_cache import find_export, folder_key
from sentencekit.spec.model_spec import ModelSpec

logger = logging.getLogger(__name__)

IR_FOLDER = "openvino"
#: sentence-transformers' file names (``export_static_quantized_openvino_model`` writes the int8 one)
IR_NAMES = {"float32": "openvino_model.xml", "int8": "openvino_model_qint8_quantized.xml"}
_COPY_SKIP = {"onnx", IR_FOLDER, ".git", "__pycache__", "checkpoints"}


class OpenVinoEngine(OnnxEngine):
    """An embedder, cross-encoder or SPLADE sparse encoder on OpenVINO's CPU runtime (see the module
    docstring). ``ImportError`` (with the pip command) without ``openvino``; ``ValueError`` for model kinds
    only other backends run; ``FileNotFoundError`` for a ``file_name`` that is not there."""

    backend = "openvino"
    #: OpenVINO's ONNX reader has no com.microsoft.GroupQueryAttention: its exports keep MatMul + Softmax
    fused_attention = False

    def __init__(self, spec: ModelSpec, family: str, options: EngineOptions) -> None:
        require_openvino()
        refuse_unsupported(spec, family)
        kwargs = dict(options.model_kwargs or {})
        self._ov_config = kwargs.pop("ov_config", None)
        subfolder = kwargs.pop("subfolder", None)
        if subfolder and kwargs.get("file_name"):
            kwargs["file_name"] = str(Path(subfolder) / kwargs["file_name"])
        # ov_config / subfolder are not torch loading arguments: they must not reach the export (nor its cache key)
        super().__init__(spec, family, dataclasses.replace(options, model_kwargs=kwargs or None))

    # -- building (the hooks OnnxEngine calls) ---------------------------------------------------------------
    def _locate(self, options: EngineOptions) -> Artifact:
        folder = self.spec.folder
        file_name = (options.model_kwargs or {}).get("file_name")
        if file_name:
            path = find_named_file(folder, file_name)
            if path.suffix == ".xml":
                return Artifact(path, _tokenizer_beside(path, folder))
            rest = {**(options.model_kwargs or {}), "file_name": str(path.relative_to(folder))}
            return super()._locate(dataclasses.replace(options, model_kwargs=rest))
        for place in (folder / IR_FOLDER, folder):
            xml = place / IR_NAMES[self.compute_dtype]
            if xml.is_file():
                return Artifact(xml, _tokenizer_beside(xml, folder))
        return super()._locate(options)

    def _quantize(self, src: Path, dst: Path, runner: Any, items: list[Any]) -> dict[str, Any]:
        """int8 on OpenVINO: NNCF static post-training quantization of the float32 graph ``src`` into the IR
        ``dst`` (:func:`sentencekit.engines.openvino_quantize.quantize_static`); ``ImportError`` without
        NNCF."""
        from sentencekit.engines.openvino_quantize import quantize_static

        return quantize_static(src, dst, runner, items)

    def _variant(self, options: EngineOptions) -> str:
        """The ONNX backend's export (shared), unless the cached one holds ``GroupQueryAttention``: then a
        plain-attention export of its own. A first export made here is plain and shared with the ONNX
        backend (which then runs it as is)."""
        shared = super()._variant(options)
        cached = find_export(self.spec.folder, f"sentencekit_{folder_key(self.spec.folder, shared)}.onnx")
        return shared + ":attention=plain" if cached is not None and right_padded_graph(cached) else shared

    def _new_session(self) -> OpenVinoSession:
        return OpenVinoSession(self.graph, self._num_threads, self._ov_config)

    def _session_metadata(self) -> dict[str, Any]:
        return dict(self._session.metadata)

    # -- saving ----------------------------------------------------------------------------------------------
    def save_folder(self, folder: Path) -> Path:
        """Write the model to ``folder`` as it loads again on this backend without exporting: the source
        folder's files (configs, tokenizer, weights; not its ``onnx/`` or ``openvino/`` caches) and the graph
        that runs as OpenVINO IR ``openvino/openvino_model.xml`` + ``.bin`` (``openvino_model_qint8_quantized``
        for int8: the NNCF-quantized IR, which loads again without NNCF), sentence-transformers' names.
        Returns the ``.xml`` path."""
        folder = Path(folder)
        source = self.spec.folder
        for entry in sorted(source.iterdir()):
            if entry.name in _COPY_SKIP or entry.name.startswith("."):
                continue
            target = folder / entry.name
            if entry.is_dir():
                shutil.copytree(entry, target, dirs_exist_ok=True)
            else:
                shutil.copyfile(entry, target)
        xml = save_ir(self._session.model, folder / IR_FOLDER / IR_NAMES[self.compute_dtype], self.meta)
        if self.tokenizer_json != source / "tokenizer.json":  # an export's own tokenizer goes beside its graph
            shutil.copyfile(self.tokenizer_json, xml.with_suffix(".tokenizer.json"))
        return xml

    # -- what the model reports ------------------------------------------------------------------------------
    @property
    def session(self) -> OpenVinoSession:
        """The :class:`~sentencekit.engines.openvino_session.OpenVinoSession` (``.compiled``: the
        ``openvino.CompiledModel``)."""
        return self._session

    @property
    def num_threads(self) -> int:
        """``INFERENCE_NUM_THREADS`` of the compiled model; setting it recompiles."""
        return self._session.num_threads

    @num_threads.setter
    def num_threads(self, value: int | None) -> None:
        OnnxEngine.num_threads.fset(self, value)  # type: ignore[attr-defined]

    @property
    def ov_config(self) -> dict[str, str]:
        """The CPU plugin properties the model was compiled with."""
        return dict(self._session.config)

    def describe(self) -> str:
        return f"openvino={self.graph.name!r}, threads={self.num_threads}"


def find_named_file(folder: Path, file_name: str) -> Path:
    """``folder/file_name``, else ``folder/openvino/file_name`` (sentence-transformers' order); an IR ``.xml``
    must have its ``.bin``. ``FileNotFoundError`` naming the places tried."""
    tried = [folder / file_name, folder / IR_FOLDER / file_name]
    for path in tried:
        if path.is_file():
            if path.suffix == ".xml" and not path.with_suffix(".bin").is_file():
                raise FileNotFoundError(f"OpenVINO IR {path} has no weights file {path.with_suffix('.bin').name} "
                                        "beside it.")
            if path.suffix not in (".xml", ".onnx"):
                raise ValueError(f"model_kwargs file_name={file_name!r}: backend='openvino' runs an OpenVINO IR "
                                 "(.xml) or an ONNX file (.onnx).")
            return path
    raise FileNotFoundError(f"model_kwargs file_name={file_name!r} is not in {folder}: tried "
                            f"{', '.join(str(p) for p in tried)}.")


def refuse_unsupported(spec: ModelSpec, family: str) -> None:
    """``ValueError`` (before anything is exported) for model kinds the OpenVINO engine does not run."""
    what = None
    if family == "multivector":
        from sentencekit.spec.multivector_source import is_retrieval_model

        if is_retrieval_model(spec):  # the ONNX backend refuses them too: only torch runs them
            raise ValueError(f"backend='openvino' does not run *ForRetrieval late-interaction retrievers (ColPali "
                             f"family); {spec.folder} is one. Use backend='torch'.")
        what = "multi-vector (late-interaction) models"
    elif spec.router is not None:
        what = "Router models"
    elif family == "embedder" and spec.is_multimodal:
        what = "multimodal (CLIP-style) models"
    elif family == "embedder" and spec.is_static:
        what = "static-embedding models (a NumPy table lookup; nothing for OpenVINO to run)"
    elif family == "sparse" and spec.modules and spec.modules[0].kind == "SparseStaticEmbedding":
        what = "SparseStaticEmbedding models"
    elif family == "reranker" and spec.is_generative_reranker:
        what = "generative (causal-LM) rerankers"
    if what is not None:
        raise ValueError(f"backend='openvino' does not run {what}; {spec.folder} is one. Use backend='onnx' "
                         "(or 'torch').")


__all__ = ["IR_NAMES", "OpenVinoEngine", "find_named_file", "refuse_unsupported"]
