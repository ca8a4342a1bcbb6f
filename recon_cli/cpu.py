"""What this CPU offers PyTorch: its dispatched vector ISA and native bfloat16 support.

CPU timings (``recon bench``) and the choice of ``run.amp=bf16`` depend on both: without
AVX512-BF16 or AMX, PyTorch emulates bfloat16 and a bf16 step is many times slower than float32.
"""

from __future__ import annotations

import torch


def cpu_capability() -> str:
    """PyTorch's CPU kernel level, e.g. ``"AVX2"``, ``"AVX512"``, ``"DEFAULT"``."""
    return str(torch.backends.cpu.get_cpu_capability())


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX tiles), as PyTorch sees it."""
    probes = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(p()) for p in probes if p is not None)
