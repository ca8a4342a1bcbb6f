"""`recon run SOURCE` (live reconstruction) and `recon bench run VIDEO` (its speed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from recon_cli.cli.common import SOURCE_RES_HELP, YAW_SYMMETRY_HELP, Backend, SourceRes, YawSymmetry, int_list
from recon_cli.cli.groups import bench_app

console = Console(stderr=True)


def _untrained_onnx(arch: str, model, checkpoint: Path | None = None) -> Path:
    """Export an encoder once to the user cache as ONNX; returns its path.

    ``checkpoint=None``: an untrained (zero-head) ``arch``; else the ``.pt`` checkpoint (the shipped
    default), cached under its content hash, so ``--backend onnx``/``auto`` runs ONNX Runtime on a
    fresh install. Lives in the CLI layer because it needs `export` (recon_cli must not import it).
    """
    import hashlib

    from export.onnx_export import export_onnx
    from recon_cli.atomic import atomic_path
    from recon_cli.coeffs import CoeffLayout
    from recon_cli.encoders.registry import build_encoder, load_checkpoint

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "recon"
    if checkpoint is not None:
        digest = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()[:16]
        out = cache / f"{Path(checkpoint).stem}-{digest}.onnx"
        if out.is_file():
            return out
        encoder, meta = load_checkpoint(checkpoint)
        console.print(f"[dim]exporting {checkpoint} to {out} for ONNX Runtime (once)[/]")
    else:
        out = cache / f"untrained-{arch}-{model.content_hash()}.onnx"
        if out.is_file():
            return out
        layout = CoeffLayout.for_model(model)
        encoder = build_encoder(arch, layout, 224)
        meta = {"arch": arch, "layout": layout.to_dict(), "size": 224, "model_name": model.name,
                "model_hash": model.content_hash(), "untrained": True}
        console.print(f"[yellow]no trained weights: exporting an untrained {arch} to {out} (once)[/]")
    with atomic_path(out, suffix=".onnx") as tmp:
        export_onnx(encoder.eval(), meta, tmp)
    return out


def _setup(weights, backend: str, arch: str, threads, model_path, max_faces: int, source_res: str = "train",
           yaw_symmetry: str = "on"):
    """Common set-up: morphable model, encoder backend + description, reconstructor."""
    import cv2

    from recon_cli.morphable import load_model
    from recon_cli.pipeline.encoder_source import resolve_encoder
    from recon_cli.pipeline.reconstruct import Reconstructor

    if threads:
        cv2.setNumThreads(int(threads))
    model = load_model(model_path)
    enc, info = resolve_encoder(weights, backend, model, arch=arch, threads=threads, untrained_onnx=_untrained_onnx)
    colour = "green" if info["trained"] else "yellow"
    console.print(f"[{colour}]encoder:[/] {info['weights']}  [dim]backend={info['backend']} arch={info['arch']} "
                  f"threads={threads or 'default'}[/]")
    if not info["trained"]:
        console.print("[yellow]warning:[/] untrained encoder — every face is the mean face at the detected position "
                      "(pass --weights to use a trained encoder)")
    recon = Reconstructor(enc, model, max_batch=max(1, max_faces), source_res=source_res, yaw_symmetry=yaw_symmetry)
    info["source_scale"] = recon.align_cfg.source_scale  # None: crops straight from the frame
    info["yaw_symmetry"] = recon.symmetry is not None  # False: off, or weights without the record
    return model, enc, info, recon


def _smoothing(smooth: bool, overrides: list[str]):
    from recon_cli.config import apply_overrides
    from recon_cli.pipeline.smoothing import SmoothingConfig

    cfg = SmoothingConfig(enabled=smooth)
    return apply_overrides(cfg, overrides) if overrides else cfg


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        source: str = typer.Argument(..., help="video file, camera index (0), image, folder of images, or a stream URL "
                                     "(rtsp://, http://) OpenCV can open."),
        weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="encoder: .onnx / .engine (recon export) or "
                                               ".pt (recon train). Default: the shipped weights; without any, an UNTRAINED "
                                               "encoder (mean face) so the pipeline still runs — the summary says so."),
        backend: Backend = typer.Option(Backend.auto, "--backend", help="encoder runtime; auto picks by file extension."),
        arch: str = typer.Option("mobilenet_v3_large", "--arch", help="architecture of the untrained fallback encoder "
                                 "(only used when no weights exist)."),
        max_faces: int = typer.Option(1, "--max-faces", min=1, help="faces tracked per frame (batched in one encoder call)."),
        smooth: bool = typer.Option(True, "--smooth/--no-smooth", help="One-Euro temporal smoothing of pose, expression "
                                    "and crop alignment per face track (videos, cameras, streams; always off for "
                                    "images and folders)."),
        smooth_set: list[str] = typer.Option([], "--smooth-set", help="smoothing setting, e.g. angles.beta=3 or "
                                             "exp.min_cutoff=1.5 (repeatable; see recon_cli/pipeline/smoothing.py)."),
        no_view: bool = typer.Option(False, "--no-view", help="no windows (headless). Windows are shown by default when "
                                     "a display exists: the overlay (OpenCV; q/Esc quits) and the 3-D mesh (Open3D)."),
        save_video: Optional[Path] = typer.Option(None, "--save-video", help="write the overlay video (.mp4)."),
        save_meshes: Optional[Path] = typer.Option(None, "--save-meshes", help="folder for one mesh per frame and face "
                                                   "(metres, camera frame, albedo colours)."),
        mesh_format: str = typer.Option("ply", "--mesh-format", help="ply or obj."),
        save_coeffs: Optional[Path] = typer.Option(None, "--save-coeffs", help="per-frame coefficients, pose and 68 "
                                                   "landmarks: FILE.jsonl (one line per frame, faces: [] when none) or FILE.npz."),
        json_out: Optional[Path] = typer.Option(None, "--json", help="write the run summary (frames, frames with faces, "
                                                "fps, per-stage ms, weights, backend) as JSON."),
        threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for the encoder (and OpenCV); default: the "
                                               "runtime's (all cores). On 2 cores, 1 is often fastest end to end with the "
                                               "edge encoder: landmarks and rendering run in parallel on the other core."),
        max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="stop after N frames."),
        model_path: Optional[Path] = typer.Option(None, "--model", help="morphable model .npz (default: the shipped ICT-FaceKit)."),
        no_stats: bool = typer.Option(False, "--no-stats", help="do not print FPS/stage times onto the overlay."),
        source_res: SourceRes = typer.Option(SourceRes.train, "--source-res", help=SOURCE_RES_HELP),
        yaw_symmetry: YawSymmetry = typer.Option(YawSymmetry.on, "--yaw-symmetry", help=YAW_SYMMETRY_HELP),
    ) -> None:
        """Reconstruct 3-D faces live from a video, camera, image(s) or stream.

        Per frame: MediaPipe landmarks (tracking) → aligned 224 crop → encoder → coefficients → mesh mapped back
        onto the frame. Shows the overlay and the 3-D mesh when a display exists; Ctrl-C stops cleanly (every
        output is finished and the summary is written).
        """
        from recon_cli.benchtable import write_json
        from recon_cli.face.mediapipe_mesh import FaceLandmarker, LandmarkerConfig
        from recon_cli.pipeline.run import RunOptions
        from recon_cli.pipeline.sources import open_source
        from recon_cli.viewer.open3d_viewer import display_available

        from recon_cli.pipeline.outputs import check_output_paths

        smoothing = _smoothing(smooth, smooth_set)
        check_output_paths(save_video, save_coeffs, save_meshes, mesh_format)  # fail fast, before any work
        src = open_source(source)
        view = (not no_view) and display_available()
        if not no_view and not view:
            console.print("[dim]no display found: running headless (as with --no-view)[/]")
        static = src.kind in ("image", "folder")
        if static and smoothing.enabled:
            from dataclasses import replace

            smoothing = replace(smoothing, enabled=False)  # separate photos: nothing to smooth across
        with src:
            model, enc, info, recon = _setup(weights, backend.value, arch, threads, model_path, max_faces,
                                             source_res.value, yaw_symmetry.value)
            opts = RunOptions(max_faces=max_faces, smoothing=smoothing, view=view, render=view or save_video is not None,
                              save_video=save_video, save_coeffs=save_coeffs, save_meshes=save_meshes,
                              mesh_format=mesh_format, max_frames=max_frames, stats=not no_stats)
            with FaceLandmarker(LandmarkerConfig(static=static, max_faces=max_faces)) as lm:
                summary = _run_with_progress(src, recon, lm, opts, info, max_frames)
        write_json(json_out, summary)
        _print_summary(summary, json_out)

    @bench_app.command("run")
    def bench_run_cmd(
        video: Path = typer.Argument(..., help="a face video (e.g. samples/face.mp4)."),
        json_out: Optional[Path] = typer.Option(None, "--json", help="write rows + environment as JSON."),
        weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="encoder (default: shipped; else an "
                                               "untrained --arch exported to ONNX)."),
        backend: Backend = typer.Option(Backend.onnx, "--backend", help="encoder runtime."),
        arch: str = typer.Option("mobilenet_v3_large", "--arch", help="untrained fallback architecture (comma list "
                                 "for several rows, e.g. mobilenet_v3_large,resnet50)."),
        max_frames: int = typer.Option(150, "--max-frames", min=1, help="frames measured (after warm-up)."),
        warmup: int = typer.Option(10, "--warmup", min=0, help="frames run before measuring."),
        threads: str = typer.Option("1,2", "--threads", help="encoder (ONNX Runtime intra-op) and OpenCV threads; a comma "
                                    "list gives one row each. The other pipeline stages run in their own threads."),
        size: str = typer.Option("640x480", "--size", help="resize frames to WxH first ('native' keeps them)."),
        render: bool = typer.Option(True, "--render/--no-render", help="include the overlay rendering stage."),
        cpu_profile: bool = typer.Option(True, "--cpu-profile/--no-cpu-profile", help="also run the stages one after "
                                         "another and report each stage's process CPU ms per frame (robust to other "
                                         "load on the machine)."),
    ) -> None:
        """End-to-end FPS and per-stage ms of `recon run` on a video, outputs off (no windows, no files)."""
        from recon_cli.benchtable import env_info, print_table, write_json
        from recon_cli.errors import InputError
        from recon_cli.face.mediapipe_mesh import FaceLandmarker, LandmarkerConfig
        from recon_cli.pipeline.bench import bench_run, cpu_profile as profile_cpu

        if size == "native":
            wh = None
        else:
            try:
                wh = tuple(int(v) for v in size.lower().split("x"))
                assert len(wh) == 2 and min(wh) > 0
            except (ValueError, AssertionError):
                raise InputError(f"--size {size!r} is not WxH", hint="e.g. --size 640x480 or --size native") from None
        thread_list = int_list(threads, "--threads")
        archs = [s.strip() for s in arch.split(",") if s.strip()][: 1 if weights is not None else None]
        rows, summaries = [], []
        load0 = os.getloadavg()[0]
        for a in archs:
            for th in thread_list:
                model, enc, info, recon = _setup(weights, backend.value, a, th, None, 1)
                res = bench_run(video, recon, lambda: FaceLandmarker(LandmarkerConfig(static=False, max_faces=1)),
                                encoder_info=info, max_frames=max_frames, warmup=warmup, size=wh, render=render)
                res["row"]["threads"] = th
                if cpu_profile:
                    with FaceLandmarker(LandmarkerConfig(static=False, max_faces=1)) as lm:
                        res["row"].update(profile_cpu(video, recon, lm, max_frames=max_frames, size=wh))
                rows.append(res["row"])
                summaries.append(res["summary"])
        env = {**env_info("cpu"), "threads": thread_list, "load_avg_1m_before": round(load0, 2),
               "load_avg_1m_after": round(os.getloadavg()[0], 2)}
        head = ("size", "backend", "arch", "threads", "trained", "render", "frames", "fps", "frame_ms", "frame_p90_ms",
                "cpu_ms_per_frame")
        print_table("recon bench run: end-to-end (outputs off)", [{k: r.get(k) for k in head} for r in rows])
        stages = [k for k in rows[0] if k.endswith("_ms") and k not in ("frame_ms", "frame_p90_ms", "cpu_ms_per_frame")
                  and not k.endswith("_cpu_ms")]
        table = []
        for s in stages:
            name = s[:-3]
            row = {"stage": name}
            for r in rows:
                row[f"{r['arch']} ×{r['threads']} wall"] = r.get(s)
                if cpu_profile:
                    row[f"×{r['threads']} cpu"] = r.get(f"{name}_cpu_ms")
            table.append(row)
        if cpu_profile:
            table.append({"stage": "total (cpu: sequential)", **{f"×{r['threads']} cpu": r.get("total_cpu_ms") for r in rows}})
        print_table("ms per frame by stage: wall clock in the stage's thread (pipelined run); process CPU "
                    "with the stages run one after another", table, env)
        write_json(json_out, {"rows": rows, "env": env, "summaries": summaries})


def _run_with_progress(src, recon, lm, opts, info, max_frames):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from recon_cli.pipeline.run import run_pipeline

    total = src.frames_expected
    if max_frames is not None:
        total = min(total, max_frames) if total else max_frames
    with Progress(TextColumn("[bold]recon run"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[stats]}"), console=console, transient=False) as progress:
        task = progress.add_task("run", total=total, stats="")

        def on_frame(s):
            ms = s["ms"]
            progress.update(task, completed=s["frame"], stats=(
                f"{s['fps']:5.1f} fps | lmk {ms['landmarks']:.1f} enc {ms['encoder']:.1f} mesh {ms['mesh']:.1f} "
                f"rnd {ms['render']:.1f} view {ms['view']:.1f} ms | faces {s['faces']}"))

        return run_pipeline(src, recon, lm, opts, encoder_info=info, on_frame=on_frame)


def _print_summary(s: dict, json_out) -> None:
    src = s["source"]
    console.print(f"[bold]{s['frames']}[/] frames ({s['frames_with_faces']} with faces, {s['frames_without_faces']} "
                  f"without), {s['faces']} faces, [bold]{s['fps']}[/] fps end-to-end; stopped: {s['stopped']}")
    if s.get("ended_early"):
        console.print(f"[yellow]the input ended early:[/] {src.get('frames_read')} of {src.get('frames_expected')} frames "
                      "could be read (truncated or corrupt file); everything read was processed")
    if src.get("unreadable"):
        console.print(f"[yellow]skipped {len(src['unreadable'])} unreadable image(s):[/] "
                      + ", ".join(e["name"] for e in src["unreadable"][:5]))
    for w in (s.get("view") or {}).get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")
    ms = s["ms_per_frame"]
    console.print("ms/frame: " + "  ".join(f"{k} {v['mean']:.1f}" for k, v in ms.items()))
    console.print(f"weights: {s['weights']}  backend: {s['backend']}")
    out = s["outputs"]
    for label, key in (("video", "video"), ("coefficients", "coeffs"), ("meshes", "meshes")):
        if out.get(key):
            console.print(f"{label}: {out[key]}")
    if json_out:
        console.print(f"summary: {json_out}")
