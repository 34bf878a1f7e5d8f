"""What the benchmarks print about the machine: the CPU and its flags, and its measured matmul peak.

Imported by the scripts beside it (``python benchmarks/<script>.py`` puts this folder on ``sys.path``).

The peak is a probe, not a datasheet figure: square matmuls of ``size`` timed for about ``seconds`` in the dtype
asked, with the threads torch has in this process. A model's convolutions reach a fraction of it; the gap to it is
the room left for kernels (the roofline's compute roof, measured on the same cores in the same run).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops", "describe_cpu", "matmul_peak_gflops"]

_FLAGS = ("avx512_bf16", "amx_bf16", "avx512f", "avx2")


def describe_cpu() -> str:
    """The CPU's model name and the bf16/AVX flags that decide its kernels, from one read of /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or "unknown CPU"
    names = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")]
    flags = [flag for flag in _FLAGS if flag in info.split()]
    return f"{names[0] if names else 'unknown CPU'} ({', '.join(flags)})"


def matmul_peak_gflops(dtype: torch.dtype = torch.float32, size: int = 1024, seconds: float = 1.0) -> float:
    """GFLOP/s of ``size`` x ``size`` matmuls in ``dtype`` on the CPU, best of the timed repetitions after one
    untimed warm-up (2 size^3 FLOPs each)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(dtype)
    b = torch.randn(size, size, generator=generator).to(dtype)
    torch.mm(a, b)
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def count_flops(step: Callable[[], object]) -> int:
    """FLOPs of the matmuls and convolutions (forward and backward) that one call of ``step`` runs, as
    ``torch.utils.flop_counter`` counts them; pooling, normalisation and element-wise work are not counted."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()
