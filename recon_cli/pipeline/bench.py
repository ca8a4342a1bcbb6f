"""``recon bench run VIDEO``: end-to-end FPS and per-stage milliseconds of the live pipeline.

Runs :func:`recon_cli.pipeline.run.run_pipeline` on a video with every output off (no window,
no files) and the overlay rendered in memory (``render=True``, the cost a user pays to see the
result; ``--no-render`` leaves it out), after ``warmup`` frames that are not counted (the first
MediaPipe detection and the first encoder call are slower). Frames are resized to ``size``
(default 640×480, the target resolution) before the pipeline sees them. One row per
configuration: FPS, ms per frame (mean, p90), the mean wall-clock ms of each stage (measured in
the stage's own thread while the stages overlap), the process CPU ms per frame of the pipelined
run, and (:func:`cpu_profile`) the process CPU ms of each stage with the stages run one after
another — the numbers to compare across machines and loads, since wall-clock times on a shared
machine mostly measure the other programs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2

from recon_cli.pipeline.run import STAGES, RunOptions, run_pipeline
from recon_cli.pipeline.sources import CaptureSource, Frame, open_source
from recon_cli.pipeline.smoothing import SmoothingConfig


class _Resized:
    """Wraps a source: frames resized to ``(w, h)`` (or kept when None) and capped at ``limit``."""

    def __init__(self, src, size: tuple[int, int] | None, limit: int | None, skip: int = 0):
        self.src, self.size, self.limit, self.skip = src, size, limit, skip
        self.fps = src.fps
        self.frames_read = 0

    def __iter__(self):
        n = 0
        for f in self.src:
            if f.index < self.skip:
                continue
            if self.limit is not None and n >= self.limit:
                return
            img = f.image if self.size is None else cv2.resize(f.image, self.size, interpolation=cv2.INTER_AREA)
            n += 1
            self.frames_read = n
            yield Frame(img, f.index, f.t, f.name)

    def info(self) -> dict[str, Any]:
        i = self.src.info()
        i.update(frames_read=self.frames_read, ended_early=False)
        if self.size:
            i.update(width=self.size[0], height=self.size[1], resized=True)
        return i


def bench_run(video: str | Path, reconstructor, landmarker_factory, *, encoder_info: dict[str, Any],
              max_frames: int | None = 200, warmup: int = 10, size: tuple[int, int] | None = (640, 480),
              render: bool = True, smooth: bool = True, max_faces: int = 1) -> dict[str, Any]:
    """One benchmark row. ``landmarker_factory()`` returns a fresh video-mode FaceLandmarker."""
    src = open_source(video)
    if not isinstance(src, CaptureSource) or src.kind != "video":
        src.close()
        from recon_cli.errors import InputError

        raise InputError(f"recon bench run needs a video file, got {video}", hint="pass an .mp4 (e.g. samples/face.mp4)")
    opts = RunOptions(max_faces=max_faces, smoothing=SmoothingConfig(enabled=smooth), view=False, render=render,
                      stats=False)
    with landmarker_factory() as lm:
        # warm-up on the first frames (MediaPipe graph start, first detection, encoder allocation)
        warm = _Resized(open_source(video), size, warmup)
        run_pipeline(warm, reconstructor, lm, opts, encoder_info=encoder_info)
        warm.src.close()
        lm.reset()
        t0 = time.perf_counter()
        summary = run_pipeline(_Resized(src, size, max_frames), reconstructor, lm, opts, encoder_info=encoder_info)
        src.close()
    ms = summary["ms_per_frame"]
    row = {"video": Path(str(video)).name, "size": f"{size[0]}x{size[1]}" if size else "native",
           "backend": encoder_info.get("backend"), "arch": encoder_info.get("arch"),
           "trained": encoder_info.get("trained"), "render": render, "frames": summary["frames"],
           "faces": summary["faces"], "fps": summary["fps"],
           "frame_ms": (summary.get("frame_ms") or {}).get("mean"), "frame_p90_ms": (summary.get("frame_ms") or {}).get("p90"),
           "cpu_ms_per_frame": summary.get("cpu_ms_per_frame")}
    for s in STAGES:
        if s in ms:
            row[f"{s}_ms"] = ms[s]["mean"]
    row["wall_s"] = round(time.perf_counter() - t0, 2)
    return {"row": row, "summary": summary}


def cpu_profile(video: str | Path, reconstructor, landmarker, *, max_frames: int | None = 75,
                size: tuple[int, int] | None = (640, 480)) -> dict[str, float]:
    """Process CPU milliseconds per frame of each stage, run one after another in this thread.

    ``time.process_time`` counts every thread of the process (MediaPipe's and ONNX Runtime's
    included); with the stages run sequentially each interval belongs to one stage, so the numbers
    attribute CPU work to stages and hardly change with other load on the machine. Their sum is the
    CPU a frame needs: on C free cores the pipeline cannot exceed ``1000·C / sum`` FPS, and with
    the three pipeline threads it approaches that when no stage dominates.
    """
    import numpy as np

    from recon_cli.pipeline.overlay import draw_landmarks, draw_mesh
    from recon_cli.pipeline.smoothing import FaceSmoother

    model = reconstructor.model
    smoother = FaceSmoother(reconstructor.layout, SmoothingConfig(), crop_size=reconstructor.size)
    cpu: dict[str, float] = {}
    n = 0
    with open_source(video) as src:
        it = iter(src)
        while max_frames is None or n < max_frames:
            c0 = time.process_time()
            frame = next(it, None)
            if frame is None:
                break
            img = frame.image if size is None else cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA)
            c1 = time.process_time()
            faces = landmarker.detect(img)[:1]
            c2 = time.process_time()
            stamps = {"decode": c1 - c0, "landmarks": c2 - c1}
            canvas = img.copy()
            if faces:
                aligned = reconstructor.align(img, faces)
                c3 = time.process_time()
                coeffs = reconstructor.encode(np.stack([a.crop for a in aligned]))
                c4 = time.process_time()
                coeffs, Ms = smoother([0], coeffs, np.stack([a.M for a in aligned]), frame.t)
                recs = reconstructor.build(coeffs, Ms)
                c5 = time.process_time()
                for r in recs:
                    draw_mesh(canvas, r.verts_img, model.triangles)
                    draw_landmarks(canvas, r.lm68)
                stamps.update(align=c3 - c2, encoder=c4 - c3, mesh=c5 - c4)
                c2 = c5
            cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)
            stamps["render"] = time.process_time() - c2
            for k, v in stamps.items():
                cpu[k] = cpu.get(k, 0.0) + v
            n += 1
    out = {f"{k}_cpu_ms": round(v / max(n, 1) * 1e3, 2) for k, v in cpu.items()}
    out["total_cpu_ms"] = round(sum(cpu.values()) / max(n, 1) * 1e3, 2)
    out["cpu_profile_frames"] = n
    return out
