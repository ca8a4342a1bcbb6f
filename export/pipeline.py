"""``recon export`` as a library call: export → verify → (int8 / fp16 / TensorRT) → report.

Every artefact is verified against the PyTorch encoder on real face crops before it is put in
place: it is written to a temporary file beside its destination, checked with
:func:`export.parity.check_parity`, and only then renamed onto the destination; when a check
fails the temporary file is removed, the JSON parity report (``<file>.parity.json``) still
records why, and :class:`export.parity.ParityError` (exit code 3) is raised.

Outputs for ``--onnx OUT.onnx``: ``OUT.onnx`` (fp32), ``OUT.int8.onnx`` (``int8``),
``OUT.fp16.onnx`` (``fp16``), ``OUT.engine`` + ``OUT.engine.json`` (``trt``), each with its
``.parity.json``.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from export.calib import load_crops
from export.onnx_export import DEFAULT_OPSET, export_onnx
from export.parity import TOLERANCES, ParityError, Tolerance, check_parity, parity_report_path, run_batched, write_report
from recon_cli.atomic import atomic_path
from recon_cli.backends.base import layout_from_meta
from recon_cli.benchtable import time_fn


@dataclass
class ExportOptions:
    """Options of :func:`export_encoder` (the CLI flags of ``recon export``)."""

    onnx: Path
    opset: int = DEFAULT_OPSET
    exporter: str = "torchscript"
    int8: bool = False
    fp16: bool = False
    trt: bool = False
    trt_precision: str = "fp16"  # fp32 | fp16 | int8
    trt_max_batch: int = 16
    trt_opt_batch: int = 1
    trt_workspace_gb: float = 2.0
    calib: Path | None = None
    calib_method: str = "minmax"
    int8_keep_float: tuple[str, ...] = ()  # node-name substrings kept in float besides the head
    calib_count: int = 64
    parity_count: int = 16
    tol_coeff: float = TOLERANCES["fp32"].coeff
    tol_px: float = TOLERANCES["fp32"].landmark_px
    int8_tol_px: float = TOLERANCES["int8"].landmark_px
    threads: int | None = None
    latency_repeat: int = 20


def _variant(path: Path, tag: str, suffix: str = ".onnx") -> Path:
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return path.with_name(f"{stem}.{tag}{suffix}") if tag else path.with_name(stem + suffix)


def _latency(backend, size: int, repeat: int) -> dict[str, float]:
    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    return time_fn(lambda: backend(x), warmup=3, repeat=repeat)


@contextlib.contextmanager
def _verified(dest: Path, precision: str, report: dict[str, Any]):
    """Yield a temp path beside ``dest``; the body writes and checks it and stores its parity
    report in ``report["parity"][precision]``; passed → renamed onto ``dest``; failed → removed."""
    with atomic_path(dest) as tmp:
        yield tmp
        rep = report["parity"][precision]
        write_report(parity_report_path(dest), {"file": dest.name, **rep})
        if not rep["passed"]:
            raise ParityError(f"{dest.name} does not match the PyTorch encoder: " + "; ".join(rep["failures"]),
                              hint="see " + str(parity_report_path(dest)) + "; the file was not written")


def export_encoder(encoder, meta: dict[str, Any], opts: ExportOptions, *, model=None,
                   on_step: Callable[[str], None] | None = None,
                   on_result: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Export ``encoder`` (an ``nn.Module``, input ``(B,3,S,S)`` RGB [0,1]) as described by
    ``opts``; returns the JSON-able report (files, parity per precision, latencies).

    ``model``: the morphable model of the head, for landmark displacement in pixels (None:
    coefficients only). ``on_step(message)`` is called when each of :func:`n_steps` stages
    starts, ``on_result(message)`` with each parity summary. Raises :class:`ParityError` when an
    artefact fails its check; the report so far is attached to it as ``.report`` (files that
    passed stay in place).
    """
    report: dict[str, Any] = {}
    try:
        return _export(encoder, meta, opts, model, on_step, on_result, report)
    except ParityError as e:
        e.report = report
        raise


def _export(encoder, meta, opts: ExportOptions, model, on_step, on_result, report: dict[str, Any]) -> dict[str, Any]:
    from recon_cli.backends.onnx_backend import OnnxBackend
    from recon_cli.backends.torch_backend import TorchBackend

    step = on_step or (lambda s: None)
    result = on_result or (lambda s: None)
    out = Path(opts.onnx)
    size = int(meta["size"])
    if model is not None:
        lay = layout_from_meta(meta)
        if (lay.n_id, lay.n_exp, lay.n_tex) != (model.n_id, model.n_exp, model.n_tex):
            model = None
    step("loading face crops")
    need_calib = opts.int8 or (opts.trt and opts.trt_precision == "int8")
    crops = load_crops(opts.calib, n=opts.parity_count + (opts.calib_count if need_calib else 0), size=size)
    parity_crops = crops[: opts.parity_count]
    calib_crops = crops[opts.parity_count:] if len(crops) > opts.parity_count else crops
    report.update({"meta": {k: v for k, v in meta.items() if k != "config"}, "files": {}, "parity": {}, "latency_ms": {},
                              "crops": {"source": str(opts.calib) if opts.calib else "development data (faces/, aflw-train/)",
                                        "parity": int(len(parity_crops)), "calibration": int(len(calib_crops)) if need_calib else 0},
                              "landmark_check": model is not None, "threads": opts.threads})
    step("running the PyTorch encoder")
    ref_backend = TorchBackend(encoder, meta, device="cpu", threads=opts.threads)
    ref = run_batched(ref_backend, parity_crops)

    def verify(path: Path, precision: str, tol: Tolerance):
        backend = OnnxBackend(path, threads=opts.threads, providers=["CPUExecutionProvider"])
        rep = check_parity(ref_backend, backend, parity_crops, model=model, precision=precision, tolerance=tol, ref_coeffs=ref)
        report["parity"][precision] = rep.to_dict()
        result(rep.summary())
        return backend

    step(f"exporting ONNX (opset {opts.opset}, {opts.exporter} exporter)")
    with _verified(out, "fp32", report) as tmp:
        export_onnx(encoder, meta, tmp, opset=opts.opset, exporter=opts.exporter)
        fp32 = verify(tmp, "fp32", Tolerance(opts.tol_coeff, opts.tol_px))
        report["latency_ms"]["onnx-fp32"] = _latency(fp32, size, opts.latency_repeat)
    report["files"]["fp32"] = str(out)

    if opts.int8:
        from export.quantize import quantize_int8

        dest = _variant(out, "int8")
        step(f"int8 QDQ quantisation ({opts.calib_method}, {len(calib_crops)} calibration crops)")
        with _verified(dest, "int8", report) as tmp:
            quantize_int8(out, tmp, calib_crops, method=opts.calib_method, exclude=list(opts.int8_keep_float))
            int8 = verify(tmp, "int8", Tolerance(None, opts.int8_tol_px))
            report["latency_ms"]["onnx-int8"] = _latency(int8, size, opts.latency_repeat)
        report["files"]["int8"] = str(dest)
    if opts.fp16:
        from export.quantize import convert_fp16

        dest = _variant(out, "fp16")
        step("fp16 conversion")
        with _verified(dest, "fp16", report) as tmp:
            convert_fp16(out, tmp)
            fp16 = verify(tmp, "fp16", TOLERANCES["fp16"])
            report["latency_ms"]["onnx-fp16"] = _latency(fp16, size, opts.latency_repeat)
        report["files"]["fp16"] = str(dest)
    if opts.trt:
        report["files"]["tensorrt"] = str(_build_trt(out, meta, opts, calib_crops, ref_backend, parity_crops, ref, model,
                                                      report, step, result))
    return report


def _build_trt(onnx_path: Path, meta, opts: ExportOptions, calib_crops, ref_backend, parity_crops, ref, model, report,
               step, result) -> Path:
    from export.onnx_export import read_metadata
    from export.tensorrt_build import build_engine
    from recon_cli.backends.tensorrt_backend import TensorRTBackend, import_tensorrt, sidecar_path

    import_tensorrt()  # fail early, with the install hint, before any work
    dest = _variant(onnx_path, "", ".engine")
    prec = opts.trt_precision
    step(f"building TensorRT engine ({prec}, batch 1..{opts.trt_max_batch})")
    build_engine(onnx_path, dest, meta=read_metadata(onnx_path), fp16=prec == "fp16", int8=prec == "int8",
                 crops=calib_crops, opt_batch=opts.trt_opt_batch, max_batch=opts.trt_max_batch, workspace_gb=opts.trt_workspace_gb)
    tol = {"fp32": Tolerance(opts.tol_coeff, opts.tol_px), "fp16": TOLERANCES["fp16"], "int8": Tolerance(None, opts.int8_tol_px)}[prec]
    try:
        engine = TensorRTBackend(dest)
        rep = check_parity(ref_backend, engine, parity_crops, model=model, precision=prec, tolerance=tol, ref_coeffs=ref)
        report["parity"]["tensorrt-" + prec] = rep.to_dict()
        write_report(parity_report_path(dest), {"file": dest.name, **rep.to_dict()})
        result(rep.summary())
        if not rep.passed:
            raise ParityError(f"{dest.name} does not match the PyTorch encoder: " + "; ".join(rep.failures))
        report["latency_ms"]["tensorrt-" + prec] = _latency(engine, int(meta["size"]), opts.latency_repeat)
    except BaseException:
        for p in (dest, sidecar_path(dest)):
            p.unlink(missing_ok=True)
        raise
    return dest


def n_steps(opts: ExportOptions) -> int:
    """Number of ``on_step`` stages :func:`export_encoder` goes through with ``opts``."""
    return 3 + int(opts.int8) + int(opts.fp16) + int(opts.trt)


def options_dict(opts: ExportOptions) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()}
