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
