"""OpenVINO compiled models behind the small part of ONNX Runtime's session interface the ONNX engine uses
(``get_inputs`` / ``get_outputs`` / ``run``), the ``ov_config`` defaults, and the ``sentencekit`` metadata
an OpenVINO IR carries.

Telemetry: ``import openvino`` imports its converter (``openvino.tools.ovc``), which sends a usage event
through ``openvino-telemetry`` on every import unless the user opted out (``opt_in_out --opt_out``) and
writes ``~/intel/openvino_ga_cid`` and ``~/intel/stats``. :func:`require_openvino` imports OpenVINO with
``openvino_telemetry`` hidden, so the converter falls back to its own no-op stub: nothing is sent or written.
NNCF (which makes the ``int8`` IR, :mod:`sentencekit.engines.openvino_quantize`) sends a usage event per
``nncf.quantize`` through the same package; it is imported the same way (:func:`telemetry_hidden`).
``SENTENCEKIT_OPENVINO_TELEMETRY=1`` leaves both as they configure themselves. sentencekit uses only the
runtime (``Core.read_model`` compiles the ONNX graph it already exports; ``save_model``) and NNCF's
post-training quantization.

>>> session = OpenVinoSession(Path("model.onnx"), num_threads=2)     # doctest: +SKIP
>>> session.run(["sentence_embedding"], features)[0].shape             # doctest: +SKIP
(8, 384)
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentencekit.engines.onnx_session import available_cpus

#: what every compiled model gets unless ``ov_config`` says otherwise: one stream tuned for the latency
#: of one batch (the pipeline runs batches one after another), and float32 arithmetic. OpenVINO's CPU
#: plugin otherwise runs bf16 on CPUs with AVX-512 BF16 or AMX (its default hint there), which moves
#: embeddings by ~1e-2 cosine: outputs would silently differ from the torch and ONNX Runtime backends.
DEFAULT_CONFIG = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
_METADATA_KEYS = (["sentencekit"], ["framework", "sentencekit"])  # our IR; an ONNX file's metadata_props


@contextlib.contextmanager
def telemetry_hidden() -> Iterator[None]:
    """Within the block, ``import openvino_telemetry`` raises ``ImportError`` (``None`` in ``sys.modules``),
    so packages that send usage events through it when it imports (OpenVINO's converter; NNCF, which sends a
    GA4 event per ``nncf.quantize`` call) fall back to their own no-op stubs and write nothing under ``~``.
    Their modules keep the stub after the block. A no-op with ``SENTENCEKIT_OPENVINO_TELEMETRY=1`` or when
    ``openvino_telemetry`` is already imported (someone else decided)."""
    hide = os.environ.get("SENTENCEKIT_OPENVINO_TELEMETRY") != "1" and "openvino_telemetry" not in sys.modules
    if hide:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if hide and sys.modules.get("openvino_telemetry", 0) is None:
            del sys.modules["openvino_telemetry"]


def require_openvino() -> Any:
    """The ``openvino`` module; ``ImportError`` with the install command when it is missing."""
    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    with telemetry_hidden():
        try:
            import openvino
        except ImportError as exc:
            raise ImportError("backend='openvino' needs OpenVINO: pip install 'sentencekit[openvino]' "
                              "(or pip install openvino).") from exc
    return openvino


@functools.lru_cache(maxsize=1)
def ov_core() -> Any:
    """One ``openvino.Core`` per process (it caches device plugins)."""
    return require_openvino().Core()


def resolve_config(ov_config: dict[str, Any] | str | Path | None, num_threads: int | None) -> dict[str, str]:
    """The CPU plugin properties: :data:`DEFAULT_CONFIG`, then ``ov_config`` (a dict, or the path of a JSON
    file as sentence-transformers accepts), then ``INFERENCE_NUM_THREADS`` (``num_threads``, default every
    CPU this process may use, as the ONNX engine). ``ValueError`` for a config that is not a JSON object."""
    given: Any = ov_config or {}
    if isinstance(given, (str, Path)):
        path = Path(given)
        try:
            given = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"ov_config={str(given)!r}: cannot read it as a JSON file ({exc}).") from exc
    if not isinstance(given, dict):
        raise ValueError(f"ov_config must be a dict of OpenVINO properties or a JSON file path, got {given!r}.")
    config = {**DEFAULT_CONFIG, **{str(k): str(v) for k, v in given.items()}}
    if num_threads is not None or "INFERENCE_NUM_THREADS" not in config:
        config["INFERENCE_NUM_THREADS"] = str(int(num_threads) if num_threads else available_cpus())
    return config


def read_model(path: Path) -> Any:
    """An ``openvino.Model`` from an IR ``.xml`` (weights in the ``.bin`` beside it) or an ``.onnx`` file;
    ``ValueError`` naming the file when OpenVINO cannot read it."""
    core = ov_core()
    try:
        return core.read_model(str(path))
    except RuntimeError as exc:
        raise ValueError(f"OpenVINO cannot read {path}: {str(exc).strip().splitlines()[0]}. Give an OpenVINO IR "
                         "(.xml with its .bin) or an ONNX file.") from exc


def model_metadata(model: Any) -> dict[str, Any]:
    """The ``sentencekit`` metadata of a graph: IR saved by sentencekit, or an ONNX export read by OpenVINO
    ({} for graphs other tools wrote)."""
    for key in _METADATA_KEYS:
        if model.has_rt_info(key):
            return json.loads(model.get_rt_info(key).astype(str))
    return {}


@dataclass(frozen=True)
class _Port:
    """What ``onnxruntime.NodeArg`` offers the engine: a name and a shape (``None`` / str where dynamic)."""

    name: str
    shape: list[Any]


def _port(port: Any) -> _Port:
    shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
    return _Port(port.get_any_name(), shape)


class OpenVinoSession:
    """An OpenVINO model compiled for the CPU, run like an ``onnxruntime.InferenceSession``. Dynamic batch
    and sequence sizes stay dynamic (the graph is compiled once for all shapes). One infer request, used
    under a lock: the pipeline runs one batch at a time per model."""

    def __init__(self, path: Path, num_threads: int | None = None,
                 ov_config: dict[str, Any] | str | Path | None = None) -> None:
        self.path = Path(path)
        self.model = read_model(self.path)
        self.config = resolve_config(ov_config, num_threads)
        try:
            self.compiled = ov_core().compile_model(self.model, "CPU", self.config)
        except RuntimeError as exc:
            raise ValueError(f"OpenVINO cannot compile {self.path} with ov_config={self.config}: "
                             f"{str(exc).strip().splitlines()[0]}") from exc
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()
        self.metadata = model_metadata(self.model)

    def get_inputs(self) -> list[_Port]:
        return [_port(p) for p in self.compiled.inputs]

    def get_outputs(self) -> list[_Port]:
        return [_port(p) for p in self.compiled.outputs]

    @property
    def num_threads(self) -> int:
        return int(self.compiled.get_property("INFERENCE_NUM_THREADS"))

    def run(self, names: list[str], feeds: dict[str, Any]) -> list[Any]:
        """The outputs ``names`` (NumPy arrays the caller owns) for the input arrays ``feeds``."""
        with self._lock:
            # share_outputs=False copies the results out of the request's buffers, which the next batch reuses
            result = self._request.infer(feeds, share_inputs=True, share_outputs=False)
            return [result[name] for name in names]


def save_ir(model: Any, xml: Path, metadata: dict[str, Any]) -> Path:
    """Write ``model`` as OpenVINO IR ``xml`` + ``.bin`` with ``metadata`` in its ``sentencekit`` rt_info.
    Weights stay in their own precision (``save_model`` would compress float32 weights to fp16 by default,
    which changes the outputs)."""
    ov = require_openvino()
    model = model.clone()
    if metadata:
        model.set_rt_info(json.dumps(metadata, sort_keys=True), ["sentencekit"])
    xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return xml


__all__ = ["DEFAULT_CONFIG", "OpenVinoSession", "model_metadata", "ov_core", "read_model", "require_openvino",
           "resolve_config", "save_ir", "telemetry_hidden"]
