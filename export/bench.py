"""``recon bench encoder``: encoder latency and throughput per backend, precision and batch.

For each architecture the encoder (``--weights`` or an untrained one with a random head, see
:func:`export.onnx_export.load_encoder`) is exported to ONNX in a work folder, quantised to
int8 (static QDQ, calibrated on real face crops) and, where TensorRT imports, built into an
fp16 engine; then every backend runs batches of random crops:

* ``torch`` eager (``torch.set_num_threads(threads)``), fp32;
* ONNX Runtime fp32 and int8 (``intra_op_num_threads = threads``, CPU provider, or CUDA where
  onnxruntime-gpu provides it);
* TensorRT (fp16 engine) where present.

Each row: latency median and p90 per batch (ms), per-image latency, throughput (images/s) and,
for the exported rows, the max/mean 68-landmark displacement against the fp32 PyTorch encoder
on real crops (pixels in the 224 crop). Wall-clock timing on a shared machine is noisy: the
environment (threads, CPU, versions) is recorded with the rows.
"""

from __future__ import annotations

import platform
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from recon_cli.benchtable import env_info, time_fn


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _row(arch: str, backend: str, precision: str, batch: int, threads: int | None, t: dict[str, float],
         parity: dict[str, Any] | None = None, device: str = "cpu", gmac: float | None = None) -> dict[str, Any]:
    """One table/JSON row. Threads are in the environment line; ``device`` appears only for
    non-CPU backends (CUDA), so the table fits a terminal. ``gflop_s``: the achieved rate,
    ``2 · gmac`` per image over the per-image latency (int8 rows: integer ops at the same count)."""
    per_image_ms = t["median_ms"] / batch
    row = {"arch": arch, "backend": backend, "precision": precision, "batch": batch,
           "median_ms": t["median_ms"], "p90_ms": t["p90_ms"], "per_image_ms": per_image_ms,
           "images_per_s": 1e3 * batch / t["median_ms"],
           "gflop_s": None if gmac is None else 2.0 * gmac / (per_image_ms / 1e3),
           "max_landmark_px": None if parity is None else parity.get("max_landmark_px"),
           "mean_landmark_px": None if parity is None else parity.get("mean_landmark_px")}
    if device != "cpu":
        row["device"] = device
    return row


def _model_for_bench():
    """The shipped morphable model, or None (then a Basel-sized head and no pixel metric)."""
    from recon_cli.errors import InputError
    from recon_cli.morphable import load_default_model

    try:
        return load_default_model()
    except InputError:
        return None


def bench_encoder(archs: list[str], batches: list[int], *, threads: int | None = 2, weights: str | Path | None = None,
                  int8: bool = True, calib: str | Path | None = None, calib_method: str = "minmax", calib_count: int = 64,
                  repeat: int = 20,
                  warmup: int = 3, workdir: str | Path | None = None,
                  on_step: Callable[[str], None] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Benchmark encoders; returns ``(rows, env)`` for :func:`recon_cli.benchtable.print_table`.

    Args:
        archs: registry architecture names (ignored when ``weights`` is given: its arch is used).
        batches: batch sizes to time.
        threads: CPU threads for torch and ONNX Runtime.
        weights: a trained checkpoint to benchmark instead of untrained encoders.
        int8: also quantise and time ONNX Runtime int8.
        calib: calibration/parity crops (folder or array); default: the development data.
        calib_count: int8 calibration crops (besides the 16 parity crops).
        workdir: where the ONNX files go (default: a temporary folder, removed afterwards).
    """
    import torch

    from export.calib import load_crops
    from export.onnx_export import export_onnx, load_encoder
    from export.parity import check_parity, run_batched
    from export.tensorrt_build import tensorrt_available
    from recon_cli.backends.onnx_backend import OnnxBackend
    from recon_cli.backends.torch_backend import TorchBackend

    step = on_step or (lambda s: None)
    if threads:
        torch.set_num_threads(int(threads))
    trt_ok, trt_info = tensorrt_available()
    model = _model_for_bench()
    rows: list[dict[str, Any]] = []
    from export.flops import encoder_gmac, gemm_gflops

    env = {**env_info("cpu"), "cpu": _cpu_name(), "threads": threads, "tensorrt": trt_info if trt_ok else "not available",
           "morphable_model": model.name if model is not None else None,
           # the fp32 ceiling rows can be read against (export.flops)
           "gemm_fp32_gflop_s": round(gemm_gflops(threads), 1)}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="recon-bench-") as tmp:
        work = Path(workdir) if workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for arch in ([None] if weights else archs):
            if weights:
                encoder, meta = load_encoder(weights)
                crops = load_crops(calib, n=16 + (calib_count if int8 else 0), size=int(meta["size"]))
            else:
                crops = load_crops(calib, n=16 + (calib_count if int8 else 0), size=224)
                encoder, meta = load_encoder(None, arch=arch, untrained=True, model=model or _bfm_sized(), bn_crops=crops)
            name = meta["arch"]
            size = int(meta["size"])
            gmac = encoder_gmac(encoder, size)
            env[f"gmac_{name}@{size}"] = round(gmac, 3)
            parity_crops, calib_crops = crops[:16], (crops[16:] if len(crops) > 16 else crops)
            step(f"{name}: exporting ONNX")
            fp32_path = export_onnx(encoder, meta, work / f"{name}.onnx")
            ref = TorchBackend(encoder, meta, threads=threads)
            ref_out = run_batched(ref, parity_crops)
            lm_model = model if meta.get("model_hash") and model is not None and meta["model_hash"] == model.content_hash() else None
            backends: list[tuple[Any, str, str, dict | None]] = [(ref, "torch", "fp32", None)]
            fp32 = OnnxBackend(fp32_path, threads=threads, spin=True)
            backends.append((fp32, "onnxruntime", "fp32", check_parity(ref, fp32, parity_crops, model=lm_model, ref_coeffs=ref_out).to_dict()))
            if int8:
                from export.quantize import quantize_int8

                step(f"{name}: int8 quantisation ({calib_method}, {len(calib_crops)} crops)")
                q = OnnxBackend(quantize_int8(fp32_path, work / f"{name}.int8.onnx", calib_crops, method=calib_method), threads=threads, spin=True)
                backends.append((q, "onnxruntime", "int8", check_parity(ref, q, parity_crops, model=lm_model, ref_coeffs=ref_out).to_dict()))
            if trt_ok:
                from export.tensorrt_build import build_engine
                from recon_cli.backends.tensorrt_backend import TensorRTBackend

                step(f"{name}: building TensorRT fp16 engine")
                from export.onnx_export import read_metadata

                eng = TensorRTBackend(build_engine(fp32_path, work / f"{name}.engine", meta=read_metadata(fp32_path), fp16=True,
                                                   max_batch=max(batches)))
                backends.append((eng, "tensorrt", "fp16", check_parity(ref, eng, parity_crops, model=lm_model, ref_coeffs=ref_out).to_dict()))
            for backend, kind, precision, parity in backends:
                device = getattr(backend, "device", "cpu")
                for b in batches:
                    step(f"{name}: {kind} {precision} batch {b}")
                    x = rng.random((b, 3, size, size), dtype=np.float32)
                    t = time_fn(lambda: backend(x), warmup=warmup, repeat=repeat)
                    rows.append(_row(name, kind, precision, b, threads, t, parity, device=str(device), gmac=gmac))
            del encoder, ref
    return rows, env


def _bfm_sized():
    """A stand-in with the Basel Face Model's coefficient sizes (80/64/80) when no morphable
    model is installed: sizes the untrained head; no landmark metric is computed with it."""
    from types import SimpleNamespace

    return SimpleNamespace(n_id=80, n_exp=64, n_tex=80, name="bfm-sized", content_hash=lambda: None)
