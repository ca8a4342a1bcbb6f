"""What this CPU offers PyTorch: its dispatched vector ISA, native bfloat16 and int8 VNNI support.

CPU timings (``recon bench``) and the choice of ``run.amp=bf16`` depend on both: without
AVX512-BF16 or AMX, PyTorch emulates bfloat16 and a bf16 step is many times slower than float32.
"""

from __future__ import annotations

import platform

import torch


def cpu_capability() -> str:
    """PyTorch's CPU kernel level, e.g. ``"AVX2"``, ``"AVX512"``, ``"DEFAULT"``."""
    return str(torch.backends.cpu.get_cpu_capability())


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX tiles), as PyTorch sees it."""
    probes = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(p()) for p in probes if p is not None)


def int8_needs_reduce_range() -> bool:
    """Whether ONNX Runtime's U8S8 int8 kernels can saturate here: an x86 CPU without VNNI
    (AVX2 or AVX-512 alone) multiplies uint8×int8 pairs with a 16-bit intermediate (VPMADDUBSW),
    so full-range 8-bit weights overflow; ``reduce_range`` (7-bit weights) avoids it."""
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
    probe = getattr(torch.cpu, "_is_vnni_supported", None)
    return x86 and not (probe is not None and bool(probe()))
