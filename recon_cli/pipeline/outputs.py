"""What ``recon run`` writes: overlay video, per-frame coefficients (JSONL / NPZ), meshes.

Every writer finishes properly whatever ends the run (end of input, ``--max-frames``, Ctrl-C, a
broken stream): :meth:`RunOutputs.close` releases the video writer and renames every file from
its temporary name (``.<name>.tmp…`` beside the target) onto the target — so a file at the target
path is always complete and playable, and an interrupted run keeps the frames done so far.

``--save-coeffs FILE.jsonl``: one JSON object per frame read, in order, written as frames are
processed (flushed each frame)::

    {"frame": 12, "t": 0.48, "name": "face.mp4#12", "faces": [ {track_id, score, bbox,
     angles_img_deg, coeffs: {id, exp, tex, angles, light, trans}, lm68, M}, … ]}

A frame without a face has ``"faces": []`` (recorded, never dropped).
``--save-coeffs FILE.npz``: the same as arrays: ``frame (N,)`` and ``t (N,)`` per frame read,
``n_faces (N,)``; per face ``face_frame (K,)``, ``track_id (K,)``, ``score (K,)``, ``coeffs (K,
total)``, ``angles_img (K, 3)`` rad, ``lm68 (K, 68, 2)`` px, ``M (K, 2, 3)``; ``layout`` (JSON).
``--save-meshes DIR``: ``DIR/frame_000012_face0.ply`` (or ``.obj``): vertices in metres in the
face's virtual camera frame (``verts_cam``), per-vertex albedo colours.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from recon_cli.atomic import default_file_mode
from recon_cli.errors import InputError


def _tmp_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, default_file_mode())  # mkstemp's 0600 would survive the final rename
    return Path(tmp)


def _clean(o: Any) -> Any:
    """NaN/Inf → None so that the JSONL stays valid JSON."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def check_output_paths(video=None, coeffs=None, meshes=None, mesh_format: str = "ply") -> None:
    """Raise :class:`InputError` for output paths that cannot work (checked before a long run starts)."""
    video, coeffs, meshes = (Path(p) if p else None for p in (video, coeffs, meshes))
    if video and video.suffix.lower() not in (".mp4", ".avi", ".mkv", ".mov"):
        raise InputError(f"--save-video {video}: unsupported extension {video.suffix or '(none)'!r}",
                         hint="use .mp4 (or .avi/.mkv/.mov)")
    if coeffs and coeffs.suffix.lower() not in (".jsonl", ".npz"):
        raise InputError(f"--save-coeffs {coeffs}: unsupported extension {coeffs.suffix or '(none)'!r}",
                         hint="use FILE.jsonl or FILE.npz")
    if mesh_format.lower().lstrip(".") not in ("ply", "obj"):
        raise InputError(f"mesh format {mesh_format!r} is not supported", hint="use ply or obj")
    if meshes and meshes.exists() and not meshes.is_dir():
        raise InputError(f"--save-meshes {meshes} exists and is not a folder", hint="pass a folder path")
    for p in (video, coeffs):
        if p and p.exists() and p.is_dir():
            raise InputError(f"{p} is a folder, expected a file path", hint="pass a file name, e.g. runs/demo/out.mp4")


class RunOutputs:
    """Opens the requested outputs; :meth:`frame` adds one frame; :meth:`close` finishes them all."""

    def __init__(self, *, video: str | Path | None = None, coeffs: str | Path | None = None,
                 meshes: str | Path | None = None, mesh_format: str = "ply", fps: float = 25.0, layout=None,
                 triangles: np.ndarray | None = None):
        self.video_path = Path(video) if video else None
        self.coeffs_path = Path(coeffs) if coeffs else None
        self.mesh_dir = Path(meshes) if meshes else None
        self.mesh_format = mesh_format.lower().lstrip(".")
        self.fps = fps if fps and fps > 0 else 25.0
        self.layout, self.triangles = layout, triangles
        check_output_paths(self.video_path, self.coeffs_path, self.mesh_dir, self.mesh_format)
        if self.mesh_dir:
            self.mesh_dir.mkdir(parents=True, exist_ok=True)
        self._writer = None
        self._video_tmp: Path | None = None
        self._jsonl = None
        self._coeffs_tmp: Path | None = None
        self._npz: dict[str, list] = {k: [] for k in ("frame", "t", "n_faces", "face_frame", "track_id", "score",
                                                      "coeffs", "angles_img", "lm68", "M")}
        if self.coeffs_path and self.coeffs_path.suffix.lower() == ".jsonl":
            self._coeffs_tmp = _tmp_beside(self.coeffs_path)
            self._jsonl = open(self._coeffs_tmp, "w", encoding="utf-8")
        self.frames_written = 0
        self.meshes_written = 0
        self.closed = False

    # ------------------------------------------------------------------ per frame
    def write_video(self, frame_bgr: np.ndarray) -> None:
        if not self.video_path:
            return
        if self._writer is None:
            h, w = frame_bgr.shape[:2]
            self._video_tmp = _tmp_beside(self.video_path)
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.video_path.suffix.lower() in (".mp4", ".mov") else "MJPG"))
            self._writer = cv2.VideoWriter(str(self._video_tmp), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                self._video_tmp.unlink(missing_ok=True)
                raise InputError(f"OpenCV cannot write video {self.video_path}", hint="try an .avi path or check the folder is writable")
            self._size = (w, h)
        if (frame_bgr.shape[1], frame_bgr.shape[0]) != self._size:  # a stream changed size mid-way
            frame_bgr = cv2.resize(frame_bgr, self._size)
        self._writer.write(np.ascontiguousarray(frame_bgr))
        self.frames_written += 1

    def write_record(self, frame, recs: list, extra: dict | None = None) -> None:
        """Record one frame read (with its faces, possibly none)."""
        if self._jsonl is not None:
            rec = {"frame": frame.index, "t": round(float(frame.t), 4), "name": frame.name,
                   "faces": [r.to_json() for r in recs], **(extra or {})}
            self._jsonl.write(json.dumps(_clean(rec)) + "\n")
            self._jsonl.flush()
        elif self.coeffs_path:  # npz: collect
            d = self._npz
            d["frame"].append(frame.index)
            d["t"].append(frame.t)
            d["n_faces"].append(len(recs))
            for r in recs:
                d["face_frame"].append(frame.index)
                d["track_id"].append(-1 if r.track_id is None else r.track_id)
                d["score"].append(r.score)
                d["coeffs"].append(r.vector)
                d["angles_img"].append(r.angles_img)
                d["lm68"].append(r.lm68)
                d["M"].append(r.M)

    def write_meshes(self, frame, recs: list, colors: list) -> None:
        if not self.mesh_dir:
            return
        from recon_cli.mesh.writers import write_mesh

        for k, (r, col) in enumerate(zip(recs, colors)):
            write_mesh(self.mesh_dir / f"frame_{frame.index:06d}_face{k}.{self.mesh_format}", r.verts_cam, self.triangles, col)
            self.meshes_written += 1

    # ------------------------------------------------------------------ finish
    def close(self) -> dict[str, Any]:
        """Finish every output (safe to call twice); returns what was written."""
        if self.closed:
            return self.summary()
        self.closed = True
        with contextlib.suppress(Exception):
            if self._writer is not None:
                self._writer.release()
        if self._video_tmp is not None:
            os.replace(self._video_tmp, self.video_path)
        if self._jsonl is not None:
            self._jsonl.flush()
            os.fsync(self._jsonl.fileno())
            self._jsonl.close()
            os.replace(self._coeffs_tmp, self.coeffs_path)
        elif self.coeffs_path:
            self._save_npz()
        return self.summary()

    def _save_npz(self) -> None:
        from recon_cli.atomic import atomic_path

        d, total = self._npz, (self.layout.total if self.layout else 0)
        arrays = {
            "frame": np.asarray(d["frame"], np.int64), "t": np.asarray(d["t"], np.float64),
            "n_faces": np.asarray(d["n_faces"], np.int32), "face_frame": np.asarray(d["face_frame"], np.int64),
            "track_id": np.asarray(d["track_id"], np.int64), "score": np.asarray(d["score"], np.float32),
            "coeffs": np.asarray(d["coeffs"], np.float32).reshape(-1, total),
            "angles_img": np.asarray(d["angles_img"], np.float64).reshape(-1, 3),
            "lm68": np.asarray(d["lm68"], np.float32).reshape(-1, 68, 2),
            "M": np.asarray(d["M"], np.float64).reshape(-1, 2, 3),
            "layout": np.array(json.dumps(self.layout.to_dict() if self.layout else {})),
        }
        with atomic_path(self.coeffs_path, suffix=".npz") as tmp:
            np.savez_compressed(tmp, **arrays)

    def summary(self) -> dict[str, Any]:
        return {"video": str(self.video_path) if self.video_path else None, "video_frames": self.frames_written,
                "coeffs": str(self.coeffs_path) if self.coeffs_path else None,
                "meshes": str(self.mesh_dir) if self.mesh_dir else None, "meshes_written": self.meshes_written}
