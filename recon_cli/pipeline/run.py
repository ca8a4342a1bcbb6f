"""The live pipeline behind ``recon run SOURCE`` (and ``recon bench run``), torch-free with ONNX.

Per frame::

    decode ─ landmarks (MediaPipe, tracking mode) ─ align (5-point similarity → 224 crop)
      ─ encoder (all faces of the frame in one batch) ─ mesh (One-Euro smoothing, NumPy decode,
      pose, mapping back through M⁻¹) ─ render (shaded overlay + landmarks) ─ view (OpenCV +
      Open3D windows) ─ write (video, coefficients, meshes)

Three stages run in their own threads joined by bounded queues (depth 2), so they overlap on a
multi-core CPU (OpenCV decoding, MediaPipe, ONNX Runtime and large NumPy operations release the
GIL): decoding; inference (landmarks → align → encoder → mesh); and, on the main thread (GUI
toolkits want it), render → view → write. Every stage's milliseconds per frame are measured in
its own thread (:class:`StageTimer`; ``wait`` is the time inference waited for a decoded frame)
and reported live and in the summary, with the end-to-end FPS (frames / wall time of the run)
and the process's CPU milliseconds per frame (all threads; robust to other load on the machine:
on C cores the pipeline cannot run faster than ``1000·C / cpu_ms_per_frame`` FPS).

Frames without a face are counted and recorded (``"faces": []`` in the JSONL), never dropped.
The run stops at the end of the input, after ``max_frames``, when a window is closed, or on
Ctrl-C; in every case the outputs are finished (:class:`recon_cli.pipeline.outputs.RunOutputs`)
and the summary says why it stopped (``stopped``) and whether the input ended early.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from recon_cli.pipeline.overlay import OverlayConfig, draw_landmarks, draw_mesh, draw_text
from recon_cli.pipeline.smoothing import FaceSmoother, FaceTracker, SmoothingConfig
from recon_cli.pipeline.stages import STAGES, Pipe, StageTimer

@dataclass
class RunOptions:
    """Options of one run (the CLI maps its flags onto these).

    Attributes:
        max_faces: faces tracked per frame.
        smoothing: One-Euro settings (``enabled=False`` for ``--no-smooth``).
        view: show the OpenCV overlay window and the Open3D mesh window.
        render: draw the overlay (needed by ``view``/``save_video``; ``recon bench run`` keeps it
            on to measure it).
        save_video / save_coeffs / save_meshes: outputs (see :mod:`recon_cli.pipeline.outputs`).
        mesh_format: ``ply`` or ``obj``.
        max_frames: stop after this many frames (None: whole input).
        overlay: look of the overlay; stats: print FPS/stage times onto the overlay.
    """

    max_faces: int = 1
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    view: bool = False
    render: bool = True
    save_video: Path | None = None
    save_coeffs: Path | None = None
    save_meshes: Path | None = None
    mesh_format: str = "ply"
    max_frames: int | None = None
    overlay: OverlayConfig = field(default_factory=OverlayConfig)
    stats: bool = True


def _decode(source, timer: StageTimer):
    """Producer: frames from ``source`` with the decoder's own time per frame."""
    def produce(stop):
        it = iter(source)
        while not stop.is_set():
            t0 = time.perf_counter()
            frame = next(it, None)
            if frame is None:
                return
            timer.add("decode", (time.perf_counter() - t0) * 1e3)
            yield frame
    return produce


def _infer(frames: Pipe, reconstructor, landmarker, opts: RunOptions, timer: StageTimer):
    """Producer: ``(frame, reconstructions)`` for every frame — landmarks, align, encoder, mesh."""
    tracker = FaceTracker(max_missed=opts.smoothing.max_missed)
    smoother = FaceSmoother(reconstructor.layout, opts.smoothing, crop_size=reconstructor.size)

    def produce(stop):
        n = 0
        it = iter(frames)
        while not stop.is_set() and (opts.max_frames is None or n < opts.max_frames):
            t0 = time.perf_counter()
            frame = next(it, None)  # waiting for the decoder (not for the consumer: that is the queue's)
            if frame is None:
                break
            t1 = time.perf_counter()
            timer.add("wait", (t1 - t0) * 1e3)
            faces = landmarker.detect(frame.image)[: opts.max_faces]
            t2 = time.perf_counter()
            timer.add("landmarks", (t2 - t1) * 1e3)
            recs = []
            if faces:
                aligned = reconstructor.align(frame.image, faces)
                t3 = time.perf_counter()
                timer.add("align", (t3 - t2) * 1e3)
                coeffs = reconstructor.encode(np.stack([a.crop for a in aligned]))
                t4 = time.perf_counter()
                timer.add("encoder", (t4 - t3) * 1e3)
                ids = tracker.assign([f.bbox for f in faces])
                smoother.forget(tracker.dropped)
                coeffs, Ms = smoother(ids, coeffs, np.stack([a.M for a in aligned]), frame.t)
                recs = reconstructor.build(coeffs, Ms, scores=[f.score for f in faces],
                                           bboxes=[f.bbox for f in faces], track_ids=ids)
                timer.add("mesh", (time.perf_counter() - t4) * 1e3)
            else:
                tracker.assign([])
                smoother.forget(tracker.dropped)
            n += 1
            yield frame, recs
        frames.stop()  # max_frames / stop: no more decoding
    return produce


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else repr(e)


def run_pipeline(source, reconstructor, landmarker, opts: RunOptions, *, encoder_info: dict[str, Any] | None = None,
                 on_frame: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run the pipeline over ``source`` (:class:`recon_cli.pipeline.sources.FrameSource`).

    Three threads: decoding, inference (landmarks → align → encoder → mesh) and this one (render,
    windows, writing — GUI toolkits want the main thread), joined by bounded queues so that the
    stages overlap; each stage's milliseconds are measured in its own thread.

    Args:
        reconstructor: :class:`recon_cli.pipeline.reconstruct.Reconstructor`.
        landmarker: :class:`recon_cli.face.mediapipe_mesh.FaceLandmarker` (video mode).
        encoder_info: what :func:`recon_cli.pipeline.encoder_source.resolve_encoder` returned.
        on_frame: called after every frame with live stats (``frame``, ``fps``, ``faces``, ``ms``);
            it may raise ``KeyboardInterrupt`` to stop like Ctrl-C.
    Returns:
        the summary dict (also what ``--json`` writes).
    """
    from recon_cli.pipeline.outputs import RunOutputs

    model = reconstructor.model
    timer = StageTimer()
    outputs = RunOutputs(video=opts.save_video, coeffs=opts.save_coeffs, meshes=opts.save_meshes,
                         mesh_format=opts.mesh_format, fps=source.fps or 25.0, layout=reconstructor.layout,
                         triangles=model.triangles)
    render = opts.render or opts.view or opts.save_video is not None
    window = viewer = None
    view_warnings: list[str] = []
    frames = frames_with_faces = faces_total = 0
    stopped = "end of input"
    decode = infer = None
    t_start = t_prev = time.perf_counter()
    cpu_start = time.process_time()

    def finish(frame, recs) -> bool:
        """Render, show and write one frame; False when a window was closed."""
        nonlocal frames, frames_with_faces, faces_total, t_prev
        t2 = time.perf_counter()
        bgr = None
        if render:
            canvas = frame.image.copy()
            for r in recs:
                draw_mesh(canvas, r.verts_img, model.triangles, vertex_faces=model.vertex_faces, config=opts.overlay)
                if opts.overlay.landmarks:
                    draw_landmarks(canvas, r.lm68, opts.overlay.landmark_radius)
            bgr = cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)
            if opts.stats:
                fps_now = 1e3 / max(timer.mean("frame", 30), 1e-6) if timer.ms.get("frame") else 0.0
                draw_text(bgr, [f"{fps_now:5.1f} fps  faces {len(recs)}",
                                "lmk %.1f enc %.1f mesh %.1f rnd %.1f ms" % tuple(
                                    timer.mean(s, 30) for s in ("landmarks", "encoder", "mesh", "render"))])
            t3 = time.perf_counter()
            timer.add("render", (t3 - t2) * 1e3)
            t2 = t3
        alive = True
        if window is not None or viewer is not None:
            alive = window.show(bgr) if window is not None else True
            alive = viewer.update([r.verts_cam for r in recs], [reconstructor.albedo(r) for r in recs]) and alive
            t3 = time.perf_counter()
            timer.add("view", (t3 - t2) * 1e3)
            t2 = t3
        if bgr is not None and opts.save_video is not None:
            outputs.write_video(bgr)
        outputs.write_record(frame, recs)
        if opts.save_meshes is not None and recs:
            outputs.write_meshes(frame, recs, [reconstructor.albedo(r) for r in recs])
        frames += 1  # counted once every output has it
        frames_with_faces += bool(recs)
        faces_total += len(recs)
        t3 = time.perf_counter()
        timer.add("write", (t3 - t2) * 1e3)
        timer.add("frame", (t3 - t_prev) * 1e3)
        t_prev = t3
        return alive

    # Ctrl-C sets a flag checked between frames, so a frame is never half-written; a second
    # Ctrl-C (e.g. while the frames in flight are finished) interrupts at once.
    interrupted = threading.Event()

    def on_sigint(signum, _frame):
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()

    main_thread = threading.current_thread() is threading.main_thread()
    prev_handler = signal.signal(signal.SIGINT, on_sigint) if main_thread else None
    try:
        if opts.view:  # a window that cannot open is a warning, not a failed run
            from recon_cli.viewer.cv_window import FrameWindow
            from recon_cli.viewer.open3d_viewer import MeshViewer

            try:
                window = FrameWindow()
            except Exception as e:
                view_warnings.append(f"overlay window unavailable: {_first_line(e)}")
            try:
                viewer = MeshViewer(model.triangles, visible=True, max_meshes=opts.max_faces)
            except Exception as e:
                view_warnings.append(f"3-D viewer unavailable: {_first_line(e)}")
        decode = Pipe(_decode(source, timer), depth=2, name="recon-decode")
        infer = Pipe(_infer(decode, reconstructor, landmarker, opts, timer), depth=2, name="recon-infer")
        try:
            for frame, recs in infer:
                if not finish(frame, recs):
                    stopped = "window closed"
                    break
                if on_frame is not None:
                    on_frame({"frame": frames, "faces": len(recs), "fps": 1e3 / max(timer.mean("frame", 30), 1e-6),
                              "ms": {s: timer.mean(s, 30) for s in STAGES}})
                if interrupted.is_set():
                    raise KeyboardInterrupt
            else:
                if opts.max_frames is not None and frames >= opts.max_frames:
                    stopped = "max_frames"
        except KeyboardInterrupt:
            # graceful: stop decoding, finish the frames already in flight (a second Ctrl-C aborts)
            stopped = "interrupted (Ctrl-C)"
            interrupted.set()
            decode.stop()
            for frame, recs in infer:
                finish(frame, recs)
    except KeyboardInterrupt:
        stopped = "interrupted (Ctrl-C)"
    finally:
        if prev_handler is not None:
            signal.signal(signal.SIGINT, prev_handler)
        wall = time.perf_counter() - t_start
        cpu = time.process_time() - cpu_start
        for pipe in (infer, decode):
            if pipe is not None:
                pipe.close()
        written = outputs.close()
        if viewer is not None:
            viewer.close()
        if window is not None:
            window.close()
    for pipe in (infer, decode):
        if pipe is not None and pipe.error is not None:
            if not isinstance(pipe.error, Exception):
                raise pipe.error
            if pipe is infer:  # a bug or bad input in inference: re-raise after the outputs are closed
                raise pipe.error
            stopped = f"input error: {pipe.error}"
    src = source.info()
    src["ended_early"] = stopped == "end of input" and bool(src.get("ended_early"))
    summary = {
        "source": src, "frames": frames, "frames_with_faces": frames_with_faces, "frames_without_faces": frames - frames_with_faces,
        "faces": faces_total, "fps": round(frames / wall, 2) if wall > 0 else 0.0, "wall_s": round(wall, 3),
        # CPU seconds of the whole process (all threads, MediaPipe's and ONNX Runtime's included)
        # per frame: unlike wall-clock stage times it barely changes when other programs load the CPU
        "cpu_ms_per_frame": round(cpu / frames * 1e3, 2) if frames else None, "cpu_s": round(cpu, 3),
        "ms_per_frame": {k: v for k, v in timer.summary().items() if k != "frame"},
        "frame_ms": timer.summary().get("frame"),
        "stopped": stopped, "ended_early": src["ended_early"],
        "weights": (encoder_info or {}).get("weights"), "trained": (encoder_info or {}).get("trained"),
        "backend": (encoder_info or {}).get("backend"), "encoder": encoder_info,
        "model": {"name": model.name, "hash": model.content_hash(), "vertices": model.n_verts},
        "smoothing": opts.smoothing.enabled, "max_faces": opts.max_faces, "outputs": written,
        "view": {"overlay_window": window is not None, "mesh_window": viewer is not None, "warnings": view_warnings},
    }
    return summary
