"""Process-group set-up for ``torchrun`` (DistributedDataParallel) and the device/AMP choice.

``torchrun --nproc_per_node N -m recon_cli train …`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`init` then joins the group (``nccl`` on CUDA, ``gloo`` on CPU) and pins each
process to ``cuda:LOCAL_RANK``. Without those variables everything runs in one process.
Only rank 0 writes files (checkpoints, logs, grids); :func:`all_flags` lets every rank agree on
"skip this batch" / "stop now" so that no rank waits forever in a collective.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from recon_cli.cpu import cpu_has_native_bf16
from recon_cli.errors import InputError

log = logging.getLogger("recon.train.distributed")

@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``auto`` → ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``; explicit values checked."""
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise InputError(f"unknown device {spec!r}", hint="use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {spec!r} requested but CUDA is not available in this torch build/machine",
                             hint="use --device cpu (or auto)")
        if dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
    return dev


def resolve_amp(spec: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for the encoder forward, or None (full float32).

    ``auto``: bfloat16 on GPUs that support it (Ampere and newer), else float16 (with a GradScaler);
    off on CPU (CPU autocast is slower than float32 for convolutions on most machines).
    """
    if spec not in ("auto", "off", "bf16", "fp16"):
        raise InputError(f"unknown autocast mode {spec!r}", hint="use auto, off, bf16 or fp16 (run.amp / --amp)")
    if spec == "off" or (spec == "auto" and device.type != "cuda"):
        return None
    if spec == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type != "cuda" and spec == "fp16":
        raise InputError("run.amp=fp16 needs a CUDA device", hint="use run.amp=bf16 or off on CPU")
    if device.type == "cpu" and spec == "bf16" and not cpu_has_native_bf16():
        log.warning("run.amp=bf16 on a CPU without AVX512-BF16 or AMX: bfloat16 is emulated there and "
                    "many times slower than float32; use run.amp=off (the CPU default)")
    return torch.bfloat16 if spec == "bf16" else torch.float16


def init(device_spec: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun; pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec, local)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, device)


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_flags(info: DistInfo, *flags: bool) -> list[bool]:
    """Logical OR of each flag over all ranks (one small all-reduce; identity when not distributed)."""
    if not info.enabled:
        return list(flags)
    t = torch.tensor([float(f) for f in flags], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def all_max(info: DistInfo, value: float) -> float:
    """The largest ``value`` over all ranks (one small all-reduce; identity when not distributed), so
    every rank takes the same decision from a per-rank measurement such as elapsed time."""
    if not info.enabled:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(info: DistInfo, obj):
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
