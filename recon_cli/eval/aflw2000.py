"""`recon eval aflw2000`: run a landmark predictor over AFLW2000-3D and score it by the protocol.

Crop modes:

* ``detector`` (the real pipeline): the predictor's own face detector runs on the whole photo.
  When it finds several faces, the one whose 68-point box overlaps the annotated face's
  ground-truth box most (IoU) is taken; a face with IoU < ``min_iou`` or no face at all is a
  **detector miss**: it is counted and reported, and that image is then predicted from the
  ground-truth box (as ``--crop gt``) so that every image has a prediction and the bins keep
  their size.
* ``gt`` (the 3DDFA protocol): the method is given the ground-truth landmark box only
  (:mod:`recon_cli.eval.crops`); what it does inside the box is its own: the ``mediapipe``
  baseline and ``recon`` (``--gt-align mesh``, default) run FaceMesh's landmark model in the box
  for their points / 5 alignment points; ``recon --gt-align box`` uses no landmarks at all.

The result keeps every per-image number (:class:`ImageResult`), the summary
(:class:`recon_cli.eval.nme.NmeSummary`) and the settings, so JSON/CSV/report writers need
nothing else. Images are read with OpenCV as BGR uint8 (H, W, 3).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol, Sequence

import numpy as np

from recon_cli.errors import InputError
from recon_cli.eval.aflw2000_data import Aflw2000
from recon_cli.eval.nme import NmeSummary, nme, region_nme, region_summary, summarise, yaw_bin

CROPS = ("detector", "gt")


class LandmarkPredictor(Protocol):
    """What the evaluation needs from a method. Landmarks: (2, 68) float64, original image px, iBUG order.

    Optional: a method that also predicts the head pose sets ``last_yaw_deg`` (degrees) in
    :meth:`predict` / :meth:`predict_gt_box`; the evaluation clears it before each image and
    records it as :attr:`ImageResult.yaw_pred_deg`."""

    name: str

    def detect(self, image_bgr: np.ndarray) -> Sequence[np.ndarray]:
        """Faces found by the method's detector: each a (2, 68) landmark array (px) used to pick the
        annotated face; the same array is passed back to :meth:`predict`."""

    def predict(self, image_bgr: np.ndarray, face: np.ndarray) -> np.ndarray:
        """Landmarks (2, 68) px for a detected face."""

    def predict_gt_box(self, image_bgr: np.ndarray, gt68: np.ndarray) -> np.ndarray:
        """Landmarks (2, 68) px from a crop derived from the ground-truth box only."""

    def settings(self) -> dict[str, Any]:
        """The method's settings, recorded in the JSON."""


@dataclass
class ImageResult:
    name: str
    yaw_deg: float
    bin: int
    nme: float  # fraction (× 100 for %)
    detector_hit: bool | None  # None under --crop gt
    crop_used: str  # "detector" | "gt" | "gt-fallback"
    pred68: np.ndarray = field(repr=False)  # (2, 68) px
    gt68: np.ndarray = field(repr=False)  # (2, 68) px
    yaw_pred_deg: float | None = None  # the method's head yaw (recon: the virtual image camera's), if it has one

    @cached_property
    def regions(self) -> dict[str, float]:
        """Per-region NME (fractions): jaw, brows, nose, eyes, mouth (:data:`recon_cli.eval.nme.REGIONS`);
        computed once, shared by the JSON and the ``--by-region`` table."""
        return region_nme(self.pred68, self.gt68)


@dataclass
class EvalResult:
    settings: dict[str, Any]
    images: list[ImageResult]
    summary: NmeSummary
    detector_misses: int
    seconds: float
    predict_seconds: float
    miss_reasons: dict[str, int] = field(default_factory=dict)  # no_face / low_iou (--crop detector)

    @property
    def images_per_s(self) -> float:
        return len(self.images) / self.seconds if self.seconds > 0 else float("nan")

    def region_summary(self) -> dict[str, list[float | None]]:
        """``{region: [bin0, bin1, bin2, balanced]}`` NME in percent."""
        return region_summary([r.regions for r in self.images], np.array([r.yaw_deg for r in self.images]))

    def pose_summary(self) -> dict[str, list[float | None]] | None:
        """How far the predicted head turn is from the label, by yaw bin (degrees), or None when
        the method predicts no pose: ``abs_yaw_bias`` = mean of ``|ŷ| − |y|`` (negative: the
        method under-turns the head), ``abs_yaw_mae`` = mean of ``||ŷ| − |y||``. Magnitudes, so
        the labels' sign convention (AFLW's is the opposite of the model's) does not matter."""
        rows = [r for r in self.images if r.yaw_pred_deg is not None]
        if not rows:
            return None
        d = np.array([abs(r.yaw_pred_deg) - abs(r.yaw_deg) for r in rows])
        bins = yaw_bin(np.array([r.yaw_deg for r in rows]))
        pick = lambda f: [float(f(d[bins == b])) if (bins == b).any() else None for b in range(3)]  # noqa: E731
        return {"abs_yaw_bias": pick(np.mean), "abs_yaw_mae": pick(lambda x: np.abs(x).mean())}

    def to_dict(self) -> dict[str, Any]:
        worst = sorted(self.images, key=lambda r: -r.nme)[:10]
        return {
            "benchmark": "AFLW2000-3D",
            "settings": self.settings,
            "summary": self.summary.to_dict(),
            "regions": self.region_summary(),
            "pose": self.pose_summary(),
            "detector": {"misses": self.detector_misses if self.settings["crop"] == "detector" else None,
                         "miss_reasons": self.miss_reasons or None, "evaluated": len(self.images)},
            "timing": {"seconds": self.seconds, "predict_seconds": self.predict_seconds,
                       "images_per_s": self.images_per_s,
                       "predict_images_per_s": len(self.images) / self.predict_seconds if self.predict_seconds > 0 else None},
            "worst": [{"name": r.name, "nme_pct": 100 * r.nme, "yaw_deg": r.yaw_deg} for r in worst],
            "per_image": [{"name": r.name, "yaw_deg": r.yaw_deg, "bin": r.bin, "nme_pct": 100 * r.nme,
                           "detector_hit": r.detector_hit, "crop_used": r.crop_used,
                           **({"yaw_pred_deg": r.yaw_pred_deg} if r.yaw_pred_deg is not None else {})}
                          for r in self.images],
        }


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of the axis-aligned bounding boxes of two landmark sets (2, N)."""
    ax0, ay0, ax1, ay1 = a[0].min(), a[1].min(), a[0].max(), a[1].max()
    bx0, by0, bx1, by1 = b[0].min(), b[1].min(), b[0].max(), b[1].max()
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return float(inter / union) if union > 0 else 0.0


def read_image(path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{path}: cannot be read as an image", hint="re-extract the AFLW2000-3D archive")
    return img


def _check_pred(pred: np.ndarray, name: str) -> np.ndarray:
    pred = np.asarray(pred, dtype=np.float64)
    if pred.shape == (68, 2):
        pred = pred.T
    if pred.shape != (2, 68) or not np.isfinite(pred).all():
        raise RuntimeError(f"{name}: predictor returned landmarks of shape {pred.shape} (expected finite (2, 68))")
    return pred


def evaluate(dataset: Aflw2000, predictor: LandmarkPredictor, crop: str = "detector", limit: int | None = None,
             min_iou: float = 0.25, progress: bool = True, extra_settings: dict[str, Any] | None = None) -> EvalResult:
    """Predict every image (or the first ``limit`` by name) and score it. See the module doc."""
    if crop not in CROPS:
        raise InputError(f"--crop must be one of {', '.join(CROPS)}, got {crop!r}")
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be a positive number of images, got {limit}")
    names = dataset.names if limit is None else dataset.names[:limit]
    results: list[ImageResult] = []
    misses = 0
    reasons = {"no_face": 0, "low_iou": 0}
    t_pred = 0.0
    t0 = time.perf_counter()
    with _progress(progress, len(names), f"AFLW2000-3D · {predictor.name} · crop={crop}") as advance:
        for name in names:
            s = dataset.sample(name)
            img = read_image(s.image_path)
            tp = time.perf_counter()
            if hasattr(predictor, "last_yaw_deg"):
                predictor.last_yaw_deg = None  # set by predict / predict_gt_box of methods with a pose
            hit: bool | None = None
            used = "gt"
            if crop == "detector":
                faces = list(predictor.detect(img))
                best = max(faces, key=lambda f: box_iou(np.asarray(f), s.gt68), default=None)
                hit = best is not None and box_iou(np.asarray(best), s.gt68) >= min_iou
                if hit:
                    pred, used = predictor.predict(img, best), "detector"
                else:
                    misses += 1
                    reasons["no_face" if best is None else "low_iou"] += 1
                    pred, used = predictor.predict_gt_box(img, s.gt68), "gt-fallback"
            else:
                pred = predictor.predict_gt_box(img, s.gt68)
            t_pred += time.perf_counter() - tp
            pred = _check_pred(pred, name)
            results.append(ImageResult(name=name, yaw_deg=s.yaw_deg, bin=int(yaw_bin(s.yaw_deg)), nme=nme(pred, s.gt68),
                                       detector_hit=hit, crop_used=used, pred68=pred, gt68=s.gt68,
                                       yaw_pred_deg=getattr(predictor, "last_yaw_deg", None)))
            advance()
    seconds = time.perf_counter() - t0
    summary = summarise(np.array([r.nme for r in results]), np.array([r.yaw_deg for r in results]))
    settings = {"data": str(dataset.root), "images_in_folder": len(dataset), "limit": limit, "method": predictor.name,
                "crop": crop, "landmarks": dataset.landmarks, "yaw_source": dataset.yaw_source,
                "min_iou": min_iou if crop == "detector" else None,
                "protocol": "68 pts, x/y only; NME = mean L2 / sqrt(w*h) of the GT landmark box; "
                            "|yaw| bins <=30, (30,60], >60 deg; balanced mean = mean of the 3 bin means",
                **predictor.settings(), **(extra_settings or {})}
    return EvalResult(settings=settings, images=results, summary=summary, detector_misses=misses,
                      seconds=seconds, predict_seconds=t_pred, miss_reasons=reasons if crop == "detector" else {})


class _progress:
    """A rich progress bar (or nothing); ``with _progress(...) as advance: advance()``."""

    def __init__(self, enabled: bool, total: int, label: str):
        self.enabled, self.total, self.label = enabled, total, label

    def __enter__(self):
        if not self.enabled:
            return lambda: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                           transient=True)
        self._p.__enter__()
        task = self._p.add_task(self.label, total=self.total)
        return lambda: self._p.advance(task)

    def __exit__(self, *exc):
        if self.enabled:
            self._p.__exit__(*exc)
        return False
