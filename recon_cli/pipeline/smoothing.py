"""Temporal smoothing for live reconstruction: the One-Euro filter, per face track.

The One-Euro filter (Casiez, Roussel, Vogel, CHI 2012) is a first-order low-pass filter whose
cut-off frequency rises with the signal's speed: slow motion is smoothed hard (no jitter),
fast motion passes with little lag. For a sample ``x`` at time ``t`` (seconds)::

    alpha(fc, dt) = 1 / (1 + 1 / (2π fc dt))
    dx   = (x − x̂_prev) / dt ;   dx̂ = dx̂_prev + alpha(d_cutoff, dt) · (dx − dx̂_prev)
    fc   = min_cutoff + beta · |dx̂|
    x̂    = x̂_prev + alpha(fc, dt) · (x − x̂_prev)

:class:`OneEuroFilter` filters a vector of channels at once (each channel its own cut-off).
What the live pipeline smooths, per face (:class:`FaceSmoother`): the crop-frame pose
``angles`` (rad) and ``trans`` (m), the expression coefficients ``exp`` and the four parameters
of the alignment similarity ``M`` (log-scale, rotation, translation in px) — the crop moves
with the landmarks every frame, so smoothing the coefficients alone would leave the jitter of
``M`` in the result. Identity and texture are not smoothed (the encoder sees the same person).
Each group has its own ``(min_cutoff, beta)`` because the groups have different units
(:class:`SmoothingConfig`). Faces are followed from frame to frame by :class:`FaceTracker`
(greedy matching of box centres); a new track starts a fresh filter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class EuroParams:
    """One-Euro parameters: ``min_cutoff`` Hz, ``beta`` (Hz per unit/s of speed), ``d_cutoff`` Hz."""

    min_cutoff: float = 1.0
    beta: float = 0.0
    d_cutoff: float = 1.0


@dataclass(frozen=True)
class SmoothingConfig:
    """Per-group One-Euro settings of the live pipeline (``recon run --smooth``).

    Units of ``beta``: Hz per (unit of the group)/s — angles in rad, trans in m, exp unitless,
    the similarity in log-scale / rad / px. Defaults were chosen by a sweep on a synthetic
    30 fps head turn (still, a 0.5 s turn of 0.5 rad, still) with Gaussian jitter (σ = 0.02
    rad): angles (0.5 Hz, 3.0) keep 22–41 % of the jitter of a still head and trail the fast turn
    by at most 11–17 % of its extent (over noise seeds); translation uses the same trade-off at the metre scale (β × 10 for motions 10×
    smaller), expression a faster cut-off (mouth motion is quicker than head motion).
    """

    enabled: bool = True
    angles: EuroParams = field(default_factory=lambda: EuroParams(min_cutoff=0.5, beta=3.0))
    trans: EuroParams = field(default_factory=lambda: EuroParams(min_cutoff=0.5, beta=30.0))
    exp: EuroParams = field(default_factory=lambda: EuroParams(min_cutoff=1.0, beta=1.5))
    similarity: EuroParams = field(default_factory=lambda: EuroParams(min_cutoff=0.5, beta=0.05))  # beta per px/s (SIM_UNITS)
    max_missed: int = 5  # frames a track survives without a matching face


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter over a vector of channels. ``__call__(x (C,), t seconds) → (C,)`` float64."""

    def __init__(self, params: EuroParams | None = None, *, min_cutoff=None, beta=None, d_cutoff=None):
        p = params or EuroParams()
        self.min_cutoff = p.min_cutoff if min_cutoff is None else min_cutoff
        self.beta = p.beta if beta is None else beta
        self.d_cutoff = p.d_cutoff if d_cutoff is None else d_cutoff
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t: float | None = None

    def reset(self) -> None:
        self.x = self.dx = self.t = None

    def __call__(self, x, t: float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.x is None or self.t is None:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = max(float(t) - self.t, 1e-3)  # repeated/out-of-order timestamps: a tiny step, no division by zero
        dx = (x - self.x) / dt
        self.dx = self.dx + _alpha(self.d_cutoff, dt) * (dx - self.dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx)
        self.x = self.x + _alpha(cutoff, dt) * (x - self.x)
        self.t += dt
        return self.x.copy()


# ---------------------------------------------------------------------- similarity parameters
# The similarity's channels (log s, φ, u px, v px) share one beta in px units: a change of 1 in
# log-scale or 1 rad of rotation moves the points of a ~200 px face by about 100 px.
SIM_UNITS = np.array([100.0, 100.0, 1.0, 1.0])


def similarity_params(M: np.ndarray, centre=(112.0, 112.0)) -> np.ndarray:
    """2×3 similarity ``[[a, -b, tx], [b, a, ty]]`` (original → crop px) → ``(log s, φ, u, v)``:
    s = √(a²+b²), φ = atan2(b, a), and (u, v) the ORIGINAL-image pixel that lands on the crop
    point ``centre``. Parametrising by the face's image position (not by ``tx, ty``, which
    couple with φ through the far-away image origin) makes the four channels independent."""
    M = np.asarray(M, dtype=np.float64)
    a, b = M[0, 0], M[1, 0]
    s, phi = math.hypot(a, b), math.atan2(b, a)
    R = np.array([[a, -b], [b, a]]) / s
    u, v = R.T @ (np.asarray(centre, dtype=np.float64) - M[:, 2]) / s
    return np.array([math.log(s), phi, u, v])


def similarity_matrix(p: np.ndarray, centre=(112.0, 112.0)) -> np.ndarray:
    """Inverse of :func:`similarity_params` → ``(2, 3) float64``."""
    s, phi = math.exp(p[0]), p[1]
    A = s * np.array([[math.cos(phi), -math.sin(phi)], [math.sin(phi), math.cos(phi)]])
    t = np.asarray(centre, dtype=np.float64) - A @ np.asarray(p[2:4], dtype=np.float64)
    return np.concatenate([A, t[:, None]], 1)


# ---------------------------------------------------------------------- tracking
class FaceTracker:
    """Assign stable ids to faces across frames by greedy nearest box-centre matching.

    A face matches a track when its centre is within ``max_dist`` × the track's box size of the
    track's last centre. Tracks unmatched for more than ``max_missed`` frames are dropped.
    """

    def __init__(self, max_dist: float = 0.5, max_missed: int = 5):
        self.max_dist, self.max_missed = max_dist, max_missed
        self.tracks: dict[int, tuple[np.ndarray, float, int]] = {}  # id → (centre, size, missed)
        self._next = 0

    def assign(self, bboxes: list[np.ndarray]) -> list[int]:
        """``bboxes``: list of ``(4,)`` x0, y0, x1, y1 px → track id per box; also returns
        the ids of tracks dropped this frame in :attr:`dropped`."""
        centres = [np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2], dtype=np.float64) for b in bboxes]
        sizes = [float(max(b[2] - b[0], b[3] - b[1], 1.0)) for b in bboxes]
        pairs = sorted(
            (float(np.linalg.norm(c - tc)) / ts, i, tid)
            for i, c in enumerate(centres) for tid, (tc, ts, _) in self.tracks.items())
        ids: list[int | None] = [None] * len(bboxes)
        used: set[int] = set()
        for d, i, tid in pairs:
            if d > self.max_dist or ids[i] is not None or tid in used:
                continue
            ids[i] = tid
            used.add(tid)
        for i in range(len(bboxes)):
            if ids[i] is None:
                ids[i] = self._next
                self._next += 1
        self.dropped = []
        for tid in list(self.tracks):
            if tid not in used:
                c, s, missed = self.tracks[tid]
                if missed + 1 > self.max_missed:
                    del self.tracks[tid]
                    self.dropped.append(tid)
                else:
                    self.tracks[tid] = (c, s, missed + 1)
        for i, tid in enumerate(ids):
            self.tracks[tid] = (centres[i], sizes[i], 0)
        return [int(t) for t in ids]


class FaceSmoother:
    """Smooths the per-face outputs of the encoder across frames (see the module docstring).

    ``__call__(track_ids, coeffs (N, total), Ms (N, 2, 3), t)`` → smoothed copies
    ``(coeffs (N, total) float32, Ms (N, 2, 3) float64)``; identity, texture and light pass through.
    """

    def __init__(self, layout, config: SmoothingConfig | None = None, crop_size: int = 224):
        self.layout = layout
        self.centre = (crop_size / 2.0, crop_size / 2.0)
        self.config = config or SmoothingConfig()
        self.filters: dict[int, dict[str, OneEuroFilter]] = {}

    def _new(self) -> dict[str, OneEuroFilter]:
        c = self.config
        sim = OneEuroFilter(c.similarity, beta=c.similarity.beta * SIM_UNITS)
        return {"angles": OneEuroFilter(c.angles), "trans": OneEuroFilter(c.trans),
                "exp": OneEuroFilter(c.exp), "similarity": sim}

    def forget(self, track_ids) -> None:
        for tid in track_ids:
            self.filters.pop(tid, None)

    def __call__(self, track_ids: list[int], coeffs: np.ndarray, Ms: np.ndarray, t: float):
        coeffs = np.array(coeffs, dtype=np.float32, copy=True)
        Ms = np.array(Ms, dtype=np.float64, copy=True)
        if not self.config.enabled:
            return coeffs, Ms
        sl = self.layout.slices
        for i, tid in enumerate(track_ids):
            f = self.filters.setdefault(tid, self._new())
            for name in ("angles", "trans", "exp"):
                coeffs[i, sl[name]] = f[name](coeffs[i, sl[name]], t)
            p = similarity_params(Ms[i], self.centre)
            if f["similarity"].x is not None:  # keep the rotation continuous across ±π
                p[1] = f["similarity"].x[1] + (p[1] - f["similarity"].x[1] + math.pi) % (2 * math.pi) - math.pi
            Ms[i] = similarity_matrix(f["similarity"](p, t), self.centre)
        return coeffs, Ms
