"""`recon eval compare`: is one model's AFLW2000-3D result really better than another's?

Two ``recon eval aflw2000 --json`` files scored on the same images are compared image by image.
Both models see the same images, so the difference of their NMEs is paired. The uncertainty
comes from which 1,000 (or 2,000) images the benchmark happens to hold: a **paired, stratified
bootstrap** resamples the images with replacement within each |yaw| bin (so the bin sizes, and
with them the balanced mean's definition, stay fixed), recomputes every statistic for both models
on each resample, and reports the 2.5 / 97.5 percentiles of the difference (``other − base``, in
NME percentage points; negative = ``other`` is better) and the share of resamples in which
``other`` is not worse. The bootstrap says nothing about training noise (another seed of the same
recipe); compare several seeds for that.

Statistics: the three bin means, the balanced mean (mean of the bin means, the headline) and the
plain mean. With one file, each statistic's own 95 % interval (the same resampling). Only
images present in both files (by name) and in the same bin are compared; a
difference in the image set is reported, and so is a difference in how the two runs were scored
(:data:`SCORING`: crop, ground truth, the jaw and inner-point rules, the AFLW calibration, TTA).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recon_cli.errors import InputError

STATS = ("0-30", "30-60", "60-90", "balanced", "plain")


#: settings that change what is scored (not which model): a paired difference between runs that
#: differ in one of them measures the scoring as well as the models.
SCORING = {"crop": lambda s: s.get("crop"), "landmarks": lambda s: s.get("landmarks"),
           "jaw rule": lambda s: (s.get("contour") or {}).get("rule"),
           "inner rule": lambda s: (s.get("inner") or {}).get("rule"),
           "AFLW calibration": lambda s: "on" if s.get("aflw21_calib") else "off",
           "TTA": lambda s: s.get("tta", "none"), "GT-box alignment": lambda s: s.get("gt_align")}


def scoring_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """``"name: A vs B"`` for each scoring setting (:data:`SCORING`) in which two runs' settings differ."""
    return [f"{k}: {f(a)} vs {f(b)}" for k, f in SCORING.items() if f(a) != f(b)]


def _load_run(path: Path, run: int) -> tuple[dict[str, tuple[int, float]], dict[str, Any]]:
    """``{image name: (yaw bin, NME %)}`` of run ``run`` in a ``recon eval aflw2000 --json`` file,
    and the run's settings."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file", hint="write one with `recon eval aflw2000 … --json FILE`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not a JSON file ({e})", hint="pass the file `recon eval aflw2000 --json` wrote") from None
    runs = doc.get("runs") if isinstance(doc, dict) else None
    if not runs or not isinstance(runs, list):
        raise InputError(f"{path} holds no evaluation runs", hint="pass the file `recon eval aflw2000 --json` wrote")
    if not 0 <= run < len(runs):
        raise InputError(f"{path} holds {len(runs)} run(s); --run {run} is out of range",
                         hint="--crop both writes two runs: 0 = detector, 1 = gt")
    r = runs[run]
    rows = r.get("per_image") or []
    if not rows:
        raise InputError(f"{path}: run {run} has no per-image results", hint="re-run `recon eval aflw2000 --json FILE`")
    return {x["name"]: (int(x["bin"]), float(x["nme_pct"])) for x in rows}, r.get("settings") or {}


def _stats(a: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """``a: (R, N)`` NME % of R resamples (or 1) → ``(R, 5)``: bin means, balanced, plain."""
    means = np.stack([a[:, bins == k].mean(1) for k in range(3)], 1)
    return np.concatenate([means, means.mean(1, keepdims=True), a.mean(1, keepdims=True)], 1)


@dataclass
class Comparison:
    base: str
    other: str
    n: int
    bin_count: list[int]
    base_stats: list[float]
    other_stats: list[float]
    diff: list[float]
    ci95: list[tuple[float, float]]
    p_not_worse: list[float]
    only_in_one: int
    boot: int
    seed: int
    scoring_differs: list[str] = ()

    def to_dict(self) -> dict[str, Any]:
        if not self.other:
            return {"base": self.base, "images": self.n, "bin_count": self.bin_count,
                    "bootstrap": {"resamples": self.boot, "seed": self.seed, "kind": "stratified by |yaw| bin"},
                    "stats": {s: {"value": v, "ci95": list(c)} for s, v, c in zip(STATS, self.base_stats, self.ci95)}}
        return {"base": self.base, "other": self.other, "images": self.n, "bin_count": self.bin_count,
                "only_in_one_file": self.only_in_one, "scoring_differs": list(self.scoring_differs), "bootstrap": {"resamples": self.boot, "seed": self.seed,
                                                                    "kind": "paired, stratified by |yaw| bin"},
                "stats": {s: {"base": b, "other": o, "diff": d, "ci95": list(c), "p_other_not_worse": p}
                          for s, b, o, d, c, p in zip(STATS, self.base_stats, self.other_stats, self.diff,
                                                      self.ci95, self.p_not_worse)}}


def compare(base: str | Path, other: str | Path | None, boot: int = 4000, seed: int = 0, run: int = 0) -> Comparison:
    """Paired stratified bootstrap of ``other − base`` (module docstring). ``boot`` ≥ 100 resamples.

    ``other=None``: the base alone; ``diff`` / ``ci95`` are then those of the base's own statistics
    (the interval of each number the benchmark gives it), ``p_not_worse`` is empty.
    """
    if boot < 100:
        raise InputError(f"--boot {boot}: too few resamples for a 95 % interval", hint="use --boot 1000 or more")
    a, set_a = _load_run(Path(base), run)
    b, set_b = (a, set_a) if other is None else _load_run(Path(other), run)
    names = sorted(n for n in a.keys() & b.keys() if a[n][0] == b[n][0])
    if len(names) < 30:
        raise InputError(f"{base} and {other} share only {len(names)} images in the same yaw bin",
                         hint="compare two runs on the same benchmark folder and --landmarks set")
    bins = np.array([a[n][0] for n in names])
    if any((bins == k).sum() == 0 for k in range(3)):
        raise InputError("a yaw bin has no shared images: the balanced mean is undefined", hint="compare full runs (no --limit)")
    va = np.array([a[n][1] for n in names])[None]
    vb = np.array([b[n][1] for n in names])[None]
    sa, sb = _stats(va, bins)[0], _stats(vb, bins)[0]
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.flatnonzero(bins == k), size=(boot, int((bins == k).sum())))
                          for k in range(3)], 1)  # (boot, N): each resample keeps every bin's size
    rb = bins[idx[0]]  # the bin of each column is the same in every resample
    d = _stats(vb[0][idx], rb) - (0.0 if other is None else _stats(va[0][idx], rb))
    lo, hi = np.percentile(d, [2.5, 97.5], axis=0)
    alone = other is None
    return Comparison(base=str(base), other="" if alone else str(other), n=len(names),
                      bin_count=[int((bins == k).sum()) for k in range(3)], base_stats=sa.tolist(),
                      other_stats=[] if alone else sb.tolist(), diff=[] if alone else (sb - sa).tolist(),
                      ci95=[(float(x), float(y)) for x, y in zip(lo, hi)],
                      p_not_worse=[] if alone else (d <= 0).mean(0).tolist(),
                      only_in_one=len(a.keys() ^ b.keys()), boot=boot, seed=seed,
                      scoring_differs=scoring_differences(set_a, set_b))
