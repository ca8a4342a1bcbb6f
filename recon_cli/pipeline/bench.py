"""``recon bench run VIDEO``: end-to-end FPS and per-stage milliseconds of the live pipeline.

Runs :func:`recon_cli.pipeline.run.run_pipeline` on a video with every output off (no window,
no files) and the overlay rendered in memory (``render=True``, the cost a user pays to see the
result; ``--no-render`` leaves it out), after ``warmup`` frames that are not counted (the first
MediaPipe detection and the first encoder call are slower). Frames are resized to ``size``
(default 640×480, the target resolution) before the pipeline sees them. One row per
configuration: FPS, ms per frame (mean, p90) and the mean ms of each stage.
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
