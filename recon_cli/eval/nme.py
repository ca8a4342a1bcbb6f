"""AFLW2000-3D landmark NME and yaw-bin statistics (the protocol of 3DDFA / PRNet / 3DDFA-V2).

The protocol, as in 3DDFA's ``benchmark_aflw2000.py`` (``calc_nme`` / ``ana``) that PRNet,
3DDFA-V2 and SynergyNet reuse:

* 68 landmarks, **x and y only** (image pixels, original photo frame).
* Per image: ``NME = mean_k ‖pred_k − gt_k‖₂ / sqrt(w · h)``, where ``w, h`` are the width and
  height of the axis-aligned bounding box of the *ground-truth* 68 points (the same landmark set
  that is compared: original or re-annotated).
* Yaw bins on ``|yaw|`` in degrees: ``|yaw| ≤ 30``, ``30 < |yaw| ≤ 60``, ``|yaw| > 60`` (a yaw of
  exactly 30° is in the first bin, exactly 60° in the second).
* Reported: each bin's mean NME (in %), their **balanced mean** (the mean of the three bin means,
  the number papers print as "Mean"), the std of the three bin means, and the plain mean over
  all images (which over-weights the frontal bin: 1306 / 462 / 232 images on the full set).

NumPy only (no torch): the evaluation runs in the torch-free runtime.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

#: Upper edges (inclusive) of the yaw bins in degrees; the last bin is open-ended.
YAW_EDGES_DEG: tuple[float, float] = (30.0, 60.0)
BIN_LABELS: tuple[str, str, str] = ("[0, 30]", "(30, 60]", "(60, 90]")


def bbox_size(gt: np.ndarray) -> float:
    """``sqrt(w · h)`` of the bounding box of ``gt: (2, 68)`` (or ``(>=2, N)``) in pixels."""
    gt = np.asarray(gt, dtype=np.float64)
    w = gt[0].max() - gt[0].min()
    h = gt[1].max() - gt[1].min()
    return float(np.sqrt(w * h))


def nme(pred: np.ndarray, gt: np.ndarray) -> float:
    """Per-image normalised mean error as a **fraction** (multiply by 100 for %).

    ``pred``: (2, 68) or (68, 2), image px; ``gt``: (2, 68) or (3, 68) (z is ignored), image px.
    Orientation: arrays of shape (68, 2) are transposed; the first two rows are x, y.
    """
    pred = _as_2xn(pred)
    gt = _as_2xn(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    size = bbox_size(gt)
    if not np.isfinite(size) or size <= 0:
        raise ValueError("ground-truth landmarks have a degenerate bounding box (zero width or height)")
    err = np.sqrt(((pred - gt) ** 2).sum(0))
    return float(err.mean() / size)


#: iBUG 68-point regions (index ranges) for the per-region breakdown.
REGIONS: dict[str, tuple[int, int]] = {"jaw": (0, 17), "brows": (17, 27), "nose": (27, 36), "eyes": (36, 48),
                                       "mouth": (48, 68)}


def region_nme(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Per-region NME (fractions) of one image: the mean point error of each :data:`REGIONS` range
    over the same ``sqrt(w · h)`` as :func:`nme`, so the regions' values, weighted by their point
    counts (17, 10, 9, 12, 20), average to the image's NME."""
    pred, gt = _as_2xn(pred), _as_2xn(gt)
    err = np.sqrt(((pred - gt) ** 2).sum(0)) / bbox_size(gt)
    return {k: float(err[a:b].mean()) for k, (a, b) in REGIONS.items()}


def region_summary(per_image: list[dict[str, float]], yaws_deg: np.ndarray) -> dict[str, list[float | None]]:
    """``{region: [bin0, bin1, bin2, balanced]}`` in percent (None for an empty bin)."""
    bins = yaw_bin(yaws_deg)
    out: dict[str, list[float | None]] = {}
    for k in REGIONS:
        v = np.array([r[k] for r in per_image], dtype=np.float64) * 100.0
        means = [float(v[bins == b].mean()) if (bins == b).any() else float("nan") for b in range(3)]
        out[k] = [_clean(m) for m in means] + [_clean(float(np.mean(means)))]
    return out


def _as_2xn(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"landmarks must be a 2-D array, got shape {a.shape}")
    if a.shape[0] not in (2, 3) and a.shape[1] in (2, 3):
        a = a.T
    return a[:2]


def yaw_bin(yaw_deg: float | np.ndarray) -> np.ndarray:
    """Bin index 0, 1, 2 of ``|yaw|`` (degrees): ≤ 30, (30, 60], > 60 (3DDFA's convention)."""
    a = np.abs(np.asarray(yaw_deg, dtype=np.float64))
    return np.where(a <= YAW_EDGES_DEG[0], 0, np.where(a <= YAW_EDGES_DEG[1], 1, 2))


@dataclass
class NmeSummary:
    """NME statistics in **percent**. ``bin_mean`` is NaN for an empty bin (then the balanced
    mean is NaN too: it is only defined when every bin has images)."""

    n: int
    bin_count: list[int]
    bin_mean: list[float]
    bin_std: list[float]
    balanced_mean: float
    balanced_std: float
    plain_mean: float
    plain_median: float
    bin_labels: list[str] = field(default_factory=lambda: list(BIN_LABELS))

    def to_dict(self) -> dict:
        return {k: _clean(v) for k, v in asdict(self).items()}


def _clean(v):
    if isinstance(v, float):
        return None if not np.isfinite(v) else v
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


def summarise(nmes: np.ndarray, yaws_deg: np.ndarray) -> NmeSummary:
    """Bin means, balanced mean and plain mean of per-image NMEs (fractions) → percent."""
    nmes = np.asarray(nmes, dtype=np.float64) * 100.0
    bins = yaw_bin(yaws_deg)
    if nmes.shape != bins.shape:
        raise ValueError(f"{nmes.shape[0]} NME values but {bins.shape[0]} yaws")
    counts, means, stds = [], [], []
    for b in range(3):
        sel = nmes[bins == b]
        counts.append(int(sel.size))
        means.append(float(sel.mean()) if sel.size else float("nan"))
        stds.append(float(sel.std()) if sel.size else float("nan"))
    m = np.asarray(means)
    return NmeSummary(
        n=int(nmes.size), bin_count=counts, bin_mean=means, bin_std=stds,
        balanced_mean=float(m.mean()), balanced_std=float(m.std()),
        plain_mean=float(nmes.mean()) if nmes.size else float("nan"),
        plain_median=float(np.median(nmes)) if nmes.size else float("nan"),
    )
