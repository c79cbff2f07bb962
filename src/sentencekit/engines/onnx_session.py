"""ONNX Runtime sessions for the ONNX backend: thread control and the ``sentencekit`` graph metadata.

>>> sess = make_session(Path("model.onnx"), num_threads=2)          # doctest: +SKIP
>>> read_metadata(sess)["kind"]                                      # doctest: +SKIP
'embedder'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


#: ``SENTENCEKIT_ORT_SPIN=1`` lets ONNX Runtime's intra-op threads spin while they wait for work again
SPIN_ENV = "SENTENCEKIT_ORT_SPIN"


def make_session(path: Path, num_threads: int | None = None, *, optimize: bool = True,
                 spin: bool | None = None) -> Any:
    """An ``InferenceSession`` on the CPU with ``num_threads`` intra-op threads (default: every CPU this
    process may use; ONNX Runtime's own default counts physical cores, which halves throughput on
    machines whose CPUs are hyper-threads). Idle intra-op threads sleep instead of spinning unless
    ``spin`` is true (default: the environment variable ``SENTENCEKIT_ORT_SPIN=1``). Raises what
    ``onnxruntime.InferenceSession`` raises for a missing or invalid graph."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(num_threads) if num_threads else available_cpus()
    options.inter_op_num_threads = 1
    if spin is None:
        spin = os.environ.get(SPIN_ENV, "0") == "1"
    # A spinning worker keeps its core busy between operators; when the cores are shared (other
    # processes, a torch model in the same process, a server's other workers) it steals time from the
    # thread it waits for. `benchmarks/onnx_profile.py --spin both --rows 4` on 2 AMD EPYC cores shared
    # with other jobs (load 12), all-MiniLM-L6-v2, 32 long passages: 3.45 s wall / 1.19 s CPU asleep,
    # 4.26 s / 1.62 s spinning. On an idle machine sleeping costs a wake-up per operator (~150 a batch).
    # The server gains most (its event loop shares the cores): 64 clients on 2 loaded cores, server / one
    # batched encode 0.86-0.97 -> 1.18 (benchmarks/serve_load.py --backend onnx).
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                        else ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def read_metadata(session: Any) -> dict[str, Any]:
    """The ``sentencekit`` metadata of an exported graph ({} for graphs exported by other tools)."""
    raw = session.get_modelmeta().custom_metadata_map.get("sentencekit")
    return json.loads(raw) if raw else {}


def input_names(session: Any) -> list[str]:
    return [i.name for i in session.get_inputs()]


def output_names(session: Any) -> list[str]:
    return [o.name for o in session.get_outputs()]
