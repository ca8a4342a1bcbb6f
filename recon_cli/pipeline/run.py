"""The live pipeline behind ``recon run SOURCE`` (and ``recon bench run``), torch-free with ONNX.

Per frame::

    decode ─ landmarks (MediaPipe, tracking mode) ─ align (5-point similarity → 224 crop)
      ─ encoder (all faces of the frame in one batch) ─ mesh (One-Euro smoothing, NumPy decode,
      pose, mapping back through M⁻¹) ─ render (shaded overlay + landmarks) ─ view (OpenCV +
      Open3D windows) ─ write (video, coefficients, meshes)

Decoding runs one frame ahead in a background thread (OpenCV releases the GIL while it decodes),
so ``decode`` is the decoder's own time per frame and ``wait`` the time the pipeline actually
waited for a frame. Every stage's milliseconds per frame are collected (:class:`StageTimer`) and
reported live and in the summary, with the end-to-end FPS (frames / wall time of the loop).

Frames without a face are counted and recorded (``"faces": []`` in the JSONL), never dropped.
The run stops at the end of the input, after ``max_frames``, when a window is closed, or on
Ctrl-C; in every case the outputs are finished (:class:`recon_cli.pipeline.outputs.RunOutputs`)
and the summary says why it stopped (``stopped``) and whether the input ended early.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from recon_cli.pipeline.overlay import OverlayConfig, draw_landmarks, draw_mesh, draw_text
from recon_cli.pipeline.smoothing import FaceSmoother, FaceTracker, SmoothingConfig

STAGES = ("decode", "wait", "landmarks", "align", "encoder", "mesh", "render", "view", "write")


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


class StageTimer:
    """Milliseconds per frame for each stage: ``add(stage, ms)``; ``summary()`` mean/p50/p90."""

    def __init__(self):
        self.ms: dict[str, list[float]] = {s: [] for s in STAGES}

    def add(self, stage: str, ms: float) -> None:
        self.ms.setdefault(stage, []).append(ms)

    def mean(self, stage: str, last: int | None = None) -> float:
        v = self.ms.get(stage) or []
        v = v[-last:] if last else v
        return float(np.mean(v)) if v else 0.0

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for s, v in self.ms.items():
            if v:
                a = np.asarray(v)
                out[s] = {"mean": round(float(a.mean()), 3), "p50": round(float(np.median(a)), 3),
                          "p90": round(float(np.percentile(a, 90)), 3)}
        return out


class _Prefetch:
    """Reads frames in a background thread, one queue slot ahead (``depth``)."""

    _END = object()

    def __init__(self, source, timer: StageTimer, depth: int = 2):
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._t = threading.Thread(target=self._run, args=(iter(source), timer), daemon=True, name="recon-decode")
        self._t.start()

    def _run(self, it, timer: StageTimer) -> None:
        try:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                frame = next(it, self._END)
                if frame is not self._END:
                    timer.add("decode", (time.perf_counter() - t0) * 1e3)
                while not self.stop.is_set():
                    try:
                        self.q.put(frame, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if frame is self._END:
                    return
        except BaseException as e:  # a decoder crash ends the input; reported in the summary
            self.error = e
            self.q.put(self._END)

    def __iter__(self):
        while True:
            item = self.q.get()
            if item is self._END:
                return
            yield item

    def close(self) -> None:
        self.stop.set()
        self._t.join(timeout=2.0)


def run_pipeline(source, reconstructor, landmarker, opts: RunOptions, *, encoder_info: dict[str, Any] | None = None,
                 on_frame: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run the pipeline over ``source`` (:class:`recon_cli.pipeline.sources.FrameSource`).

    Args:
        reconstructor: :class:`recon_cli.pipeline.reconstruct.Reconstructor`.
        landmarker: :class:`recon_cli.face.mediapipe_mesh.FaceLandmarker` (video mode).
        encoder_info: what :func:`recon_cli.pipeline.encoder_source.resolve_encoder` returned.
        on_frame: called after every frame with live stats (``frame``, ``fps``, ``faces``, ``ms``).
    Returns:
        the summary dict (also what ``--json`` writes).
    """
    from recon_cli.pipeline.outputs import RunOutputs

    model = reconstructor.model
    timer = StageTimer()
    tracker = FaceTracker(max_missed=opts.smoothing.max_missed)
    smoother = FaceSmoother(reconstructor.layout, opts.smoothing, crop_size=reconstructor.size)
    outputs = RunOutputs(video=opts.save_video, coeffs=opts.save_coeffs, meshes=opts.save_meshes,
                         mesh_format=opts.mesh_format, fps=source.fps or 25.0, layout=reconstructor.layout,
                         triangles=model.triangles)
    render = opts.render or opts.view or opts.save_video is not None
    window = viewer = None
    if opts.view:
        from recon_cli.viewer.open3d_viewer import FrameWindow, MeshViewer

        window = FrameWindow()
        viewer = MeshViewer(model.triangles, visible=True, max_meshes=opts.max_faces)
    frames = frames_with_faces = faces_total = 0
    stopped = "end of input"
    prefetch = _Prefetch(source, timer)
    t_start = time.perf_counter()
    t_prev = t_start
    try:
        it = iter(prefetch)
        while True:
            if opts.max_frames is not None and frames >= opts.max_frames:
                stopped = "max_frames"
                break
            t0 = time.perf_counter()
            frame = next(it, None)
            t1 = time.perf_counter()
            if frame is None:
                break
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
                Ms = np.stack([a.M for a in aligned])
                coeffs, Ms = smoother(ids, coeffs, Ms, frame.t)
                recs = reconstructor.build(coeffs, Ms, scores=[f.score for f in faces],
                                           bboxes=[f.bbox for f in faces], track_ids=ids)
                t2 = time.perf_counter()
                timer.add("mesh", (t2 - t4) * 1e3)
            else:
                tracker.assign([])
                smoother.forget(tracker.dropped)
            frames += 1
            frames_with_faces += bool(recs)
            faces_total += len(recs)
            # ---- render
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
            # ---- view
            if window is not None or viewer is not None:
                alive = window.show(bgr) if window is not None else True
                alive = viewer.update([r.verts_cam for r in recs], [reconstructor.albedo(r) for r in recs]) and alive
                t3 = time.perf_counter()
                timer.add("view", (t3 - t2) * 1e3)
                t2 = t3
                if not alive:
                    stopped = "window closed"
                    break
            # ---- write
            if bgr is not None and opts.save_video is not None:
                outputs.write_video(bgr)
            outputs.write_record(frame, recs)
            if opts.save_meshes is not None and recs:
                outputs.write_meshes(frame, recs, [reconstructor.albedo(r) for r in recs])
            t3 = time.perf_counter()
            timer.add("write", (t3 - t2) * 1e3)
            timer.add("frame", (t3 - t_prev) * 1e3)
            t_prev = t3
            if on_frame is not None:
                on_frame({"frame": frames, "faces": len(recs), "fps": 1e3 / max(timer.mean("frame", 30), 1e-6),
                          "ms": {s: timer.mean(s, 30) for s in STAGES}})
    except KeyboardInterrupt:
        stopped = "interrupted (Ctrl-C)"
    finally:
        wall = time.perf_counter() - t_start
        prefetch.close()
        written = outputs.close()
        if viewer is not None:
            viewer.close()
        if window is not None:
            window.close()
    if prefetch.error is not None:
        stopped = f"input error: {prefetch.error}"
    src = source.info()
    src["ended_early"] = stopped == "end of input" and bool(src.get("ended_early"))
    summary = {
        "source": src, "frames": frames, "frames_with_faces": frames_with_faces, "frames_without_faces": frames - frames_with_faces,
        "faces": faces_total, "fps": round(frames / wall, 2) if wall > 0 else 0.0, "wall_s": round(wall, 3),
        "ms_per_frame": {k: v for k, v in timer.summary().items() if k != "frame"},
        "frame_ms": timer.summary().get("frame"),
        "stopped": stopped, "ended_early": src["ended_early"],
        "weights": (encoder_info or {}).get("weights"), "trained": (encoder_info or {}).get("trained"),
        "backend": (encoder_info or {}).get("backend"), "encoder": encoder_info,
        "model": {"name": model.name, "hash": model.content_hash(), "vertices": model.n_verts},
        "smoothing": opts.smoothing.enabled, "max_faces": opts.max_faces, "outputs": written,
    }
    return summary
