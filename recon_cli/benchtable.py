"""Shared output for ``recon bench``: a rich table on the terminal and the same rows as JSON.

Every benchmark returns ``rows`` (a list of flat dicts) plus an ``env`` dict; the CLI prints
them with :func:`print_table` and writes them with :func:`write_json`.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

from recon_cli.atomic import atomic_write_text


def env_info(device: str = "cpu") -> dict[str, Any]:
    """Machine facts printed with every benchmark (threads, device, library versions)."""
    info: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(),
                            "cpu_count": os.cpu_count(), "device": device}
    try:
        import torch

        from recon_cli.cpu import cpu_capability, cpu_has_native_bf16

        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                    cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                    # the CPU's vector ISA as PyTorch dispatches it (e.g. AVX2, AVX512) and whether it
                    # has bfloat16 in hardware: CPU numbers are comparable only between equal rows
                    cpu_capability=cpu_capability(), cpu_native_bf16=cpu_has_native_bf16())
    except ImportError:
        info["torch"] = None
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return info


def time_fn(fn: Callable[[], Any], *, warmup: int = 3, repeat: int = 20, sync: Callable[[], None] | None = None) -> dict[str, float]:
    """Run ``fn`` ``warmup`` + ``repeat`` times; wall-clock milliseconds: median, p90, mean, min."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
    return {"median_ms": statistics.median(times), "p90_ms": p90, "mean_ms": statistics.fmean(times), "min_ms": times[0]}


def print_table(title: str, rows: list[dict[str, Any]], env: dict[str, Any] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped/logged output: don't squeeze the table into 80 columns
        console = Console(width=200)
    table = Table(title=title)
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    for c in columns:
        table.add_column(c, justify="right" if rows and isinstance(rows[0].get(c), (int, float)) else "left")
    for r in rows:
        table.add_row(*[_fmt(r.get(c)) for c in columns])
    console.print(table)
    if env:
        console.print("  ".join(f"[dim]{k}[/]={v}" for k, v in env.items()))


def write_json(path: str | Path | None, payload: dict[str, Any]) -> None:
    if path is not None:
        atomic_write_text(path, json.dumps(payload, indent=2, default=str) + "\n")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return "" if v is None else str(v)
