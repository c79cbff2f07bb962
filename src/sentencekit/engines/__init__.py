"""The backends a model runs on, behind one small protocol (:mod:`sentencekit.engines.protocol`).

``BACKENDS`` is the one registry the library, the CLI, the server, pool workers and ``embed-corpus`` use:
a backend name -> the function that builds its engine for a model family from a
:class:`~sentencekit.spec.model_spec.ModelSpec`. A new backend is one engine module plus one line here.

- ``torch``: the ``nn.Sequential`` of modules (training, GPUs, any module type);
- ``onnx``: torch-free: ONNX Runtime for transformer pipelines (SPLADE sparse encoders with their pooling
  inside the graph; multi-vector models with their token projection inside it and their masks and pooling in
  NumPy; CLIP-style models with one graph per modality and images preprocessed in NumPy), a NumPy table lookup
  for static models (and ``SparseStaticEmbedding`` query routes), one engine per route for Router models;
- ``openvino``: the ``onnx`` engine's pipeline with OpenVINO's CPU runtime running the same graph (embedders,
  cross-encoders, SPLADE; int8 by NNCF static quantization; :mod:`sentencekit.engines.openvino_engine`).

>>> sorted(BACKENDS)
['onnx', 'openvino', 'torch']
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

logger = logging.getLogger(__name__)

if TYPE_CHECKING:  # pragma: no cover
    from sentencekit.engines.protocol import Engine, EngineOptions
    from sentencekit.spec.model_spec import ModelSpec


def _torch_engine(spec: ModelSpec, family: str, options: EngineOptions) -> Engine:
    from sentencekit.engines.torch_engine import TorchEngine

    return TorchEngine.from_spec(spec, family, options)


def _torch_free_engine(spec: ModelSpec, family: str, options: EngineOptions) -> Engine:
    if family == "reranker" and spec.is_generative_reranker:
        # a ValueError: backend="auto" (CLI, server) falls back to torch with a warning
        raise ValueError(f"{spec.folder} is a generative (causal-LM) reranker, which the onnx backend does not run "
                         "yet (its chat template and last-position LogitScore are torch-only): use backend='torch'.")
    if family in ("embedder", "multivector") and spec.renders_chat_template:
        # the torch-free tokenizer has no Jinja renderer: tokenizing the bare text would silently differ
        raise ValueError(f"{spec.folder} renders its text inputs through the tokenizer's chat template (as "
                         "sentence-transformers 6.2 does for a model whose tokenizer has one), which the onnx "
                         "backend does not do yet: use backend='torch', or save the model with a text-only "
                         "Transformer (modality_config without 'message') to encode the bare texts.")
    if family in ("embedder", "sparse") and spec.router is not None:
        from sentencekit.engines.router_engine import RouterEngine

        return RouterEngine(spec, {route: _torch_free_engine(spec.route(route), family, options)
                                   for route in spec.router.routes})
    if family == "embedder" and spec.is_multimodal:
        from sentencekit.engines.multimodal_onnx_engine import MultimodalOnnxEngine

        return MultimodalOnnxEngine(spec, options)
    if family == "embedder" and spec.is_static:
        from sentencekit.engines.static_engine import StaticEngine

        return StaticEngine(spec, options)
    if family == "multivector":
        from sentencekit.engines.multivector_onnx_engine import MultiVectorOnnxEngine

        return MultiVectorOnnxEngine(spec, options)
    if family == "sparse" and spec.modules and spec.modules[0].kind == "SparseStaticEmbedding":
        from sentencekit.engines.sparse_static_engine import SparseStaticEngine

        return SparseStaticEngine(spec, options)
    from sentencekit.engines.onnx_engine import OnnxEngine

    return OnnxEngine(spec, family, options)


def _openvino_engine(spec: ModelSpec, family: str, options: EngineOptions) -> Engine:
    from sentencekit.engines.openvino_engine import OpenVinoEngine

    return OpenVinoEngine(spec, family, options)


#: backend name -> engine builder ``(spec, family, options) -> Engine``
BACKENDS = {
    "torch": _torch_engine,
    "onnx": _torch_free_engine,
    "openvino": _openvino_engine,
}


def choose_backend(requested: str, *, device: str | None = None, compute_dtype: str | None = None) -> str:
    """The backend to try first for ``requested``: a registered name as given; ``"auto"`` picks ONNX Runtime
    (same outputs, faster on CPUs, no torch once exported) for a CPU model in float32/int8 when onnxruntime
    is installed, torch otherwise (GPUs, also for ``device=None`` on a machine with a CUDA GPU; bf16). On the
    CPUs where OpenVINO runs the model faster (:func:`sentencekit.engines.cpu.openvino_preferred`, x86-64 with
    ``openvino`` installed: float32 with AVX-512; int8, as NNCF static quantization, with AVX-512 VNNI and
    ``nncf`` installed) it picks ``openvino``; :func:`load_on_backend`
    then falls back to ONNX Runtime for models OpenVINO does not run.
    ``--backend auto`` of the server and of every CLI command uses it (through :func:`load_on_backend`).

    >>> choose_backend("auto", device="cuda")
    'torch'
    """
    if requested != "auto":
        return check_backend(requested)
    import importlib.util

    # device=None means "best available" to torch: a CUDA GPU when there is one, which beats the CPU
    on_cpu = device == "cpu" or (device is None and not cuda_gpu_visible())
    if on_cpu and compute_dtype in (None, "float32", "int8") and importlib.util.find_spec("onnxruntime"):
        from sentencekit.engines.cpu import openvino_preferred

        return "openvino" if openvino_preferred(compute_dtype) else "onnx"
    return "torch"


def cuda_gpu_visible() -> bool:
    """Whether torch would find a CUDA GPU, answered without importing torch (a third of a second or more):
    the NVIDIA driver is loaded and ``CUDA_VISIBLE_DEVICES`` does not hide every device."""
    import os

    if os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return False
    return os.path.exists("/proc/driver/nvidia/version")


def load_on_backend(cls: Any, name: str, requested: str, *, what: str = "model", **kwargs: Any) -> tuple[Any, str]:
    """``cls(name, backend=..., **kwargs)`` on the backend :func:`choose_backend` picks for ``requested``;
    returns ``(model, backend)``. With ``"auto"``, a model ONNX Runtime cannot run (a pipeline it cannot
    export, e.g. Router or a custom module) is loaded on torch instead, with one warning. The one loader
    the CLI commands and ``sentencekit serve`` share, so ``auto`` means the same everywhere."""
    backend = choose_backend(requested, device=kwargs.get("device"), compute_dtype=kwargs.get("compute_dtype"))
    if backend == "openvino" and requested == "auto":
        try:
            return cls(name, backend="openvino", **kwargs), "openvino"
        except (ValueError, ImportError) as exc:  # e.g. static / Router / CLIP models: ONNX Runtime runs them
            logger.info("%s %s does not run on OpenVINO (%s); trying ONNX Runtime.", what, name, exc)
            backend = "onnx"
    if backend == "onnx" and requested == "auto":
        try:
            return cls(name, backend="onnx", **kwargs), "onnx"
        except (ValueError, ImportError) as exc:
            logger.warning("%s %s cannot run on ONNX Runtime (%s); using torch.", what, name, exc)
            return cls(name, backend="torch", **kwargs), "torch"
    return cls(name, backend=backend, **kwargs), backend


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}; choose from {', '.join(BACKENDS)}.")
    return backend


def create_engine(backend: str, family: str, spec: ModelSpec, options: EngineOptions) -> Engine:
    """The engine of ``backend`` for a model of ``family`` (``"embedder"``, ``"reranker"``, ``"sparse"`` or
    ``"multivector"``)."""
    return BACKENDS[check_backend(backend)](spec, family, options)


__all__ = ["BACKENDS", "create_engine", "check_backend", "choose_backend", "load_on_backend"]
