"""The prepared-dataset format: the contract between ``recon prep`` (:mod:`train.prep`) and the trainer.

Layout::

    DATASET/
      dataset.json     header, written once when the folder is created:
                       {"format_version": 1, "size": 224, "mask_source": "mediapipe" | "bisenet",
                        "landmarks": "mediapipe68", "template": [[x, y] * 5] (crop px),
                        "camera": {"size", "focal", "cx", "cy", "distance"} (the crop camera to
                        render with: recon_cli.render.camera.CameraConfig fields),
                        "align": {"size", "scale", "border"}, "labels": {"0": "out", ...},
                        "created": ISO time, "recon_version": str}
      manifest.jsonl   one JSON object per sample, appended while running (a resumed run skips
                       ids already present; a half-written last line from a crash is ignored):
                       {"id": str (stable, from the source path), "source": str (as given),
                        "crop": "crops/<id>.jpg", "mask": "masks/<id>.png",
                        "lm68": [[x, y] * 68] crop px, "score": float (detection score),
                        "M": [[a, b, c], [d, e, f]] original px → crop px,
                        "size_px": float (face size in the original, px),
                        "extra": {"pts21": [[x, y] * 21] crop px, NaN (JSON NaN) for invisible,
                                  "yaw_deg": AFLW yaw label, degrees (with --pts21 when yaws.npy
                                  is beside pts21.npy; sign opposite to the model's yaw),
                                  "face_source": "roi-fallback" (faces fitted without a detection),
                                  "pack_index": position in the packed source manifest
                                  (datasets made by `recon unpack`, train/pack.py)}}
      crops/<id>.jpg   size×size RGB JPEG, quality 95
      masks/<id>.png   size×size uint8 region labels: 0 out, 1 skin, 2 eyes, 3 nose, 4 mouth
      skipped.jsonl    {"source", "id", "reason"} per skipped file ("unreadable: …", "no face",
                       "too small: …", "error: …")
      report.json      processed, skipped by reason, images/s, detection rate, the command's options
      preview.png      optional (``--preview N``): crops with landmarks and mask overlay

Pixel convention of every crop-space coordinate: :mod:`recon_cli.render.camera` (origin at
the top-left corner of the top-left pixel; pixel (i, j) centred at (j + 0.5, i + 0.5)).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from recon_cli.errors import InputError

FORMAT_VERSION = 1
HEADER = "dataset.json"
MANIFEST = "manifest.jsonl"
SKIPPED = "skipped.jsonl"
REPORT = "report.json"
PREVIEW = "preview.png"


@dataclass
class Sample:
    """One manifest entry with paths resolved; arrays as documented in the module docstring."""

    id: str
    source: str
    crop: Path
    mask: Path
    lm68: np.ndarray  # (68, 2) float32 crop px
    score: float
    M: np.ndarray  # (2, 3) float64 original → crop
    extra: dict[str, Any]

    def load_crop(self) -> np.ndarray:
        """``(S, S, 3) uint8`` RGB."""
        from recon_cli.face.io import read_rgb

        return read_rgb(self.crop)

    def load_mask(self) -> np.ndarray:
        """``(S, S) uint8`` region labels."""
        import cv2

        m = cv2.imread(str(self.mask), cv2.IMREAD_UNCHANGED)
        if m is None:
            raise InputError(f"cannot read mask {self.mask}", hint="re-run `recon prep` on the dataset to rebuild it")
        return m

    @property
    def pts21(self) -> np.ndarray | None:
        """``(21, 2) float32`` crop px with NaN for invisible points, or None."""
        p = self.extra.get("pts21")
        return None if p is None else np.asarray(p, np.float32)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSON-lines file; a truncated final line (crash during append) is skipped."""
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines) - 1 and not line.endswith("\n"):
                return  # interrupted append
            raise InputError(f"{path}: line {n + 1} is not valid JSON",
                             hint="remove or fix that line; `recon prep` will redo the sample") from None


def repair_jsonl(path: Path) -> int:
    """Cut a torn last line (no trailing newline, from an interrupted append) so that appends
    start on a fresh line; returns the number of bytes removed."""
    if not path.is_file():
        return 0
    with open(path, "rb+") as f:
        data = f.read()
        if not data or data.endswith(b"\n"):
            return 0
        keep = data.rfind(b"\n") + 1
        f.truncate(keep)
        return len(data) - keep


def load_header(dataset_dir: str | Path) -> dict[str, Any]:
    """``dataset.json`` of ``dataset_dir``, checked for the format version."""
    d = Path(dataset_dir)
    p = d / HEADER
    if not p.is_file():
        raise InputError(f"{d} is not a prepared dataset (no {HEADER})",
                         hint="create it with `recon prep IMAGES --out DATASET`")
    try:
        header = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"{p} is not valid JSON: {e}", hint="re-create the dataset with `recon prep`") from None
    if header.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{p}: dataset format version {header.get('format_version')}, this recon reads {FORMAT_VERSION}",
                         hint="re-create the dataset with this version's `recon prep`")
    return header


def load_manifest(dataset_dir: str | Path, check_files: bool = False) -> tuple[dict[str, Any], list[Sample]]:
    """Read a prepared dataset → ``(header, samples)`` in manifest order (duplicates: first wins).

    ``check_files``: also verify that every crop and mask exists (InputError naming the first missing).
    """
    d = Path(dataset_dir)
    header = load_header(d)
    samples, seen = [], set()
    for rec in read_jsonl(d / MANIFEST):
        if rec["id"] in seen:
            continue
        seen.add(rec["id"])
        s = Sample(id=rec["id"], source=rec["source"], crop=d / rec["crop"], mask=d / rec["mask"],
                   lm68=np.asarray(rec["lm68"], np.float32), score=float(rec["score"]),
                   M=np.asarray(rec["M"], np.float64), extra=rec.get("extra", {}))
        if check_files and not (s.crop.is_file() and s.mask.is_file()):
            raise InputError(f"{d}: sample {s.id} lists {s.crop.name}/{s.mask.name} but a file is missing",
                             hint="re-run `recon prep` with the same --out to redo it")
        samples.append(s)
    return header, samples


def json_line(rec: dict[str, Any]) -> str:
    """One manifest line; floats rounded to 1/1000 px, NaN written as JSON ``NaN`` (Python's json reads it)."""
    return json.dumps(_round(rec), separators=(",", ":"), allow_nan=True) + "\n"


def _round(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _round(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_round(v) for v in x]
    if isinstance(x, np.ndarray):
        return _round(x.tolist())
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isnan(x) else round(x, 6 if abs(x) < 10 else 3)
    if isinstance(x, np.integer):
        return int(x)
    return x
