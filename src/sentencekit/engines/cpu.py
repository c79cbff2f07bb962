"""What this CPU runs fast, read from ``/proc/cpuinfo`` (torch-free, cached).

bf16 matrix products are fast only with AVX-512 BF16 or AMX-BF16 (otherwise they are emulated and
slower than fp32); int8 ones with AVX-512 VNNI / AVX-VNNI or AMX-INT8 (otherwise ONNX Runtime's u8s8
kernels still beat fp32 with AVX2, but by less).

>>> from sentencekit.engines.cpu import cpu_features
>>> isinstance(cpu_features().bf16, bool)
True
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuFeatures:
    """Instruction-set facts that decide which precisions run fast."""

    flags: frozenset[str]
    model: str = ""

    @property
    def bf16(self) -> bool:
        """bf16 matrix products in hardware (AVX-512 BF16 or AMX-BF16)."""
        return bool({"avx512_bf16", "amx_bf16"} & self.flags)

    @property
    def amx(self) -> bool:
        return "amx_tile" in self.flags

    @property
    def vnni(self) -> bool:
        """int8 dot products in hardware (AVX-512 VNNI, AVX-VNNI or AMX-INT8)."""
        return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & self.flags)

    @property
    def avx512(self) -> bool:
        return "avx512f" in self.flags

    def describe(self) -> str:
        parts = [p for p, on in (("AVX-512", self.avx512), ("VNNI", self.vnni), ("bf16", self.bf16),
                                 ("AMX", self.amx)) if on]
        return f"{self.model or platform.processor() or platform.machine()} ({', '.join(parts) or 'no AVX-512'})"


@functools.lru_cache(maxsize=1)
def cpu_features() -> CpuFeatures:
    """Flags of the first CPU in ``/proc/cpuinfo`` (empty on systems without it)."""
    flags: set[str] = set()
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("flags", "Features") and not flags:
                    flags = set(value.split())
                elif key == "model name" and not model:
                    model = value.strip()
                if flags and model:
                    break
    except OSError:
        pass
    return CpuFeatures(frozenset(flags), model)


def openvino_preferred(compute_dtype: str | None) -> bool:
    """Whether ``backend="auto"`` runs a CPU model on OpenVINO rather than ONNX Runtime, on an x86-64 CPU with
    ``openvino`` installed: float32 where the CPU has AVX-512; int8 where it has AVX-512 VNNI (or AMX-INT8)
    and ``nncf`` is installed (OpenVINO's int8 is NNCF static quantization, made once per model,
    :mod:`sentencekit.engines.openvino_quantize`).

    A rule, not a per-model micro-benchmark: both runtimes run the same graph, so the outcome depends on the
    CPU and the runtimes far more than on the model, and a timing taken at load time on a shared machine is
    noisy enough to flip the choice between loads (a cached choice would then be arbitrary). Measured with
    ``nice python benchmarks/openvino_vs_onnx.py`` (all-MiniLM-L6-v2, batch 32, 2 threads, best of 3
    alternating rounds; AMD EPYC, 2 vCPUs, AVX-512 + VNNI + BF16, no AMX; shared with other jobs, so
    absolute rates are low and ratios carry some noise; openvino 2026.4.1, onnxruntime 1.32.0, nncf 3.4.0):

    - float32: OpenVINO 1.27x ONNX Runtime on 1024 short texts (~14 tokens), 1.10x on 128 long ones
      (~230 tokens; three later runs: 1.04-1.06x / 1.07-1.15x), outputs identical (cosine to torch 1.000000
      mean and min, STS-B 82.03 on both). It starts slower: loading from the cached export and encoding one
      text took 1.4-1.8 s against 0.7 s for ONNX Runtime (OpenVINO compiles the graph at every load), which
      a served or batch model repays.
    - int8 (2026-12-06, nncf 3.4.0, three runs): OpenVINO's NNCF static int8 ran at 1.33-1.51x (short) /
      1.42-1.46x (long) ONNX Runtime's dynamic int8, 2.3-3.1x OpenVINO float32, and stayed closer to float32
      (STS-B 82.07 against 81.64; cosine to torch 0.9971 / 0.9976 mean against 0.9935 / 0.9952). OpenVINO
      running ONNX Runtime's dynamic-quantization graph instead (before NNCF) ran at 0.39x / 0.62x.

    No measurement covers CPUs without AVX-512 or ARM, where ONNX Runtime stays the choice; int8 without
    VNNI stays on ONNX Runtime too (static int8 needs the VNNI dot products to pay off; not measured). The
    issue's Ice Lake Xeon (AVX-512 + VNNI) is not in the table; the rule extends to it as an AVX-512 x86 CPU.
    """
    import importlib.util

    if compute_dtype not in (None, "float32", "int8") or platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    features = cpu_features()
    if importlib.util.find_spec("openvino") is None:
        return False
    if compute_dtype == "int8":
        avx512_int8 = {"avx512_vnni", "amx_int8"} & features.flags
        return bool(avx512_int8) and importlib.util.find_spec("nncf") is not None
    return features.avx512
