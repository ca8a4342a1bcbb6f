"""`recon export` (encoder → ONNX / int8 / fp16 / TensorRT, verified) and `recon bench encoder`.

Thin layer: parses options and calls :func:`export.pipeline.export_encoder` and
:func:`export.bench.bench_encoder` (importing ``export`` is allowed in the CLI layer only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from recon_cli.cli.common import int_list
from recon_cli.cli.groups import bench_app
from recon_cli.errors import InputError


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        onnx: Path = typer.Option(..., "--onnx", help="Output ONNX file (fp32). Variants go beside it: OUT.int8.onnx, OUT.fp16.onnx, OUT.engine."),
        weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Encoder checkpoint (.pt). Default: the shipped recon_cli/weights/default.pt."),
        arch: Optional[str] = typer.Option(None, "--arch", help="Encoder architecture (with --untrained), e.g. resnet50."),
        untrained: bool = typer.Option(False, "--untrained", help="Export a randomly initialised ARCH with a random non-zero head (for testing the tool chain)."),
        model: Optional[Path] = typer.Option(None, "--model", help="Morphable model (.npz) of the head, for the landmark parity check. Default: the shipped ICT-FaceKit model."),
        size: int = typer.Option(224, "--size", help="Input crop size S (with --untrained)."),
        opset: int = typer.Option(17, "--opset", help="ONNX opset (>= 17)."),
        exporter: str = typer.Option("torchscript", "--exporter", help="torch.onnx exporter: torchscript (default, fast, robust) or dynamo (torch.export)."),
        int8: bool = typer.Option(False, "--int8", help="Also write an int8 static-QDQ model (ONNX Runtime), calibrated on real crops."),
        fp16: bool = typer.Option(False, "--fp16", help="Also write an fp16 model (float32 input/output)."),
        calib: Optional[Path] = typer.Option(None, "--calib", help="Face crops for calibration and parity: a `recon prep` dataset or image folder, or a .npy array. Default: ../shared/data faces."),
        calib_method: str = typer.Option("minmax", "--calib-method", help="int8 calibration: minmax, entropy or percentile."),
        calib_count: int = typer.Option(64, "--calib-count", help="Number of calibration crops."),
        int8_keep_float: list[str] = typer.Option([], "--int8-keep-float", help="Keep ONNX nodes whose name contains this text in float (repeatable), e.g. /backbone/layer4/ ; the regression head always is."),
        trt: bool = typer.Option(False, "--trt", help="Also build a TensorRT 10 engine (OUT.engine + OUT.engine.json); needs tensorrt and cuda-python."),
        trt_precision: str = typer.Option("fp16", "--trt-precision", help="TensorRT engine precision: fp32, fp16 or int8 (entropy calibration)."),
        trt_max_batch: int = typer.Option(16, "--trt-max-batch", help="Largest batch of the engine's optimisation profile."),
        trt_workspace_gb: float = typer.Option(2.0, "--trt-workspace-gb", help="TensorRT builder workspace limit (GiB)."),
        parity_crops: int = typer.Option(16, "--parity-crops", help="Number of real crops for the parity check."),
        tol_coeff: float = typer.Option(1e-3, "--tol-coeff", help="fp32 parity: max |Δcoeff| allowed."),
        tol_px: float = typer.Option(0.05, "--tol-px", help="fp32 parity: max landmark displacement (pixels, 224 crop)."),
        int8_tol_px: float = typer.Option(1.5, "--int8-tol-px", help="int8 parity: max landmark displacement (pixels)."),
        threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for PyTorch and ONNX Runtime."),
        seed: int = typer.Option(0, "--seed", help="Random head seed (with --untrained)."),
        json_out: Optional[Path] = typer.Option(None, "--json", help="Write the export report (files, parity, latency) as JSON."),
    ) -> None:
        """Export the encoder to ONNX (dynamic batch, opset ≥ 17, recon metadata), verify it against PyTorch on real face crops (max |Δcoeff| and 68-landmark displacement in pixels), and optionally write int8 / fp16 variants and a TensorRT engine.

        Input of the exported graph: image (batch, 3, S, S) float32 RGB in [0, 1]; the ImageNet normalisation is inside the graph. A file that fails its parity check is not written (exit code 3); the reason is in OUT.parity.json.
        """
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from export.onnx_export import EXPORTERS, load_encoder
        from export.parity import ParityError
        from export.pipeline import ExportOptions, export_encoder, n_steps, options_dict
        from recon_cli.benchtable import write_json

        if exporter not in EXPORTERS:
            raise InputError(f"--exporter must be one of {EXPORTERS}, got {exporter!r}")
        if trt_precision not in ("fp32", "fp16", "int8"):
            raise InputError(f"--trt-precision must be fp32, fp16 or int8, got {trt_precision!r}")
        if onnx.suffix.lower() != ".onnx":
            raise InputError(f"--onnx must name a .onnx file, got {onnx}", hint="e.g. --onnx runs/export/encoder.onnx")
        if trt:
            from recon_cli.backends.tensorrt_backend import import_cudart, import_tensorrt

            import_tensorrt()
            import_cudart()
        console = Console(stderr=True)
        mm = None
        if model is not None or untrained:
            from recon_cli.morphable import load_model

            mm = load_model(model)
        bn_crops = None
        if untrained:
            from export.calib import load_crops

            bn_crops = load_crops(calib, n=32, size=size)
        encoder, meta = load_encoder(weights, arch=arch, untrained=untrained, model=mm, size=size, seed=seed, bn_crops=bn_crops)
        if mm is None:
            try:
                from recon_cli.morphable import load_default_model

                mm = load_default_model()
            except InputError:
                console.print("[yellow]note:[/] no morphable model: parity is checked on coefficients only (pass --model)")
        opts = ExportOptions(onnx=onnx, opset=opset, exporter=exporter, int8=int8, fp16=fp16, trt=trt, trt_precision=trt_precision,
                             trt_max_batch=trt_max_batch, trt_workspace_gb=trt_workspace_gb, calib=calib, calib_method=calib_method,
                             int8_keep_float=tuple(int8_keep_float), calib_count=calib_count, parity_count=parity_crops, tol_coeff=tol_coeff, tol_px=tol_px,
                             int8_tol_px=int8_tol_px, threads=threads)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as progress:
            task = progress.add_task("export", total=n_steps(opts))
            started = [False]

            def step(msg: str) -> None:
                if started[0]:
                    progress.advance(task)
                started[0] = True
                progress.update(task, description=msg)

            try:
                report = export_encoder(encoder, meta, opts, model=mm, on_step=step,
                                        on_result=lambda m: progress.console.print(f"  {m}", highlight=False))
            except ParityError as e:  # keep the report of what was done and why it stopped
                write_json(json_out, {**getattr(e, "report", {}), "options": options_dict(opts), "error": e.message})
                raise
            progress.advance(task)
        report["options"] = options_dict(opts)
        if mm is not None and not report["landmark_check"]:
            console.print(f"[yellow]note:[/] the morphable model {mm.name!r} does not fit the encoder head "
                          f"(trained for {meta.get('model_name')}): parity was checked on coefficients only; pass --model")
        if not untrained:  # the source's AFLW calibration (recon eval --calib auto) follows each exported file
            from export.onnx_export import DEFAULT_WEIGHTS
            from recon_cli.eval.aflw21_calib import carry

            src = weights or DEFAULT_WEIGHTS  # what load_encoder exported
            report["aflw21_calib"] = {p: str(c) for p, f in report["files"].items() if (c := carry(src, f)) is not None}
        for prec, path in report["files"].items():
            lat = report["latency_ms"].get(f"onnx-{prec}") or report["latency_ms"].get(f"tensorrt-{opts.trt_precision}")
            extra = f"  (batch 1: {lat['median_ms']:.2f} ms median)" if lat else ""
            console.print(f"[green]wrote[/] {path}{extra}")
        write_json(json_out, report)

    @bench_app.command("encoder")
    def bench_encoder_cmd(
        arch: str = typer.Option("resnet50", "--arch", help="Comma-separated encoder architectures (untrained, random head)."),
        weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Benchmark this checkpoint instead of untrained encoders."),
        batch: str = typer.Option("1,8", "--batch", help="Comma-separated batch sizes."),
        threads: int = typer.Option(2, "--threads", help="CPU threads for PyTorch and ONNX Runtime."),
        int8: bool = typer.Option(True, "--int8/--no-int8", help="Also quantise and time ONNX Runtime int8."),
        calib: Optional[Path] = typer.Option(None, "--calib", help="Face crops for int8 calibration and the landmark check (default: ../shared/data)."),
        calib_method: str = typer.Option("minmax", "--calib-method", help="int8 calibration: minmax, entropy or percentile."),
        calib_count: int = typer.Option(64, "--calib-count", help="Number of int8 calibration crops."),
        repeat: int = typer.Option(20, "--repeat", help="Timed runs per row (after 3 warm-up runs)."),
        keep: Optional[Path] = typer.Option(None, "--keep", help="Keep the exported ONNX files in this folder."),
        json_out: Optional[Path] = typer.Option(None, "--json", help="Write rows and environment as JSON."),
    ) -> None:
        """Encoder latency (median, p90 per batch) and throughput per backend and batch size: PyTorch eager, ONNX Runtime fp32 and int8, TensorRT where installed.

        Reduced-precision rows carry the 68-landmark displacement against fp32 PyTorch on real crops (pixels, 224 crop). Untrained encoders get BatchNorm statistics from real crops and a random head.
        """
        from rich.console import Console

        from export.bench import bench_encoder
        from recon_cli.benchtable import print_table, write_json

        console = Console(stderr=True)
        with console.status("benchmarking…") as status:
            rows, env = bench_encoder([a.strip() for a in arch.split(",") if a.strip()], int_list(batch, "--batch"), threads=threads,
                                      weights=weights, int8=int8, calib=calib, calib_method=calib_method,
                                      calib_count=calib_count, repeat=repeat,
                                      workdir=keep, on_step=lambda m: status.update(m + "…"))
        print_table("recon bench encoder", rows, env)
        write_json(json_out, {"rows": rows, "env": env})
