"""Parity of an exported encoder against its PyTorch reference, in coefficients and in pixels.

Both encoders run on the same real face crops (:func:`export.calib.load_crops`). Besides the
raw coefficient difference, the coefficients are decoded the way the runtime uses them: NumPy
morphable-model shape (``id``, ``exp``), pose (``angles``, ``trans``) and the crop camera
(:mod:`recon_cli.render.camera`), and the 68 projected landmarks are compared in crop pixels.
That is the number that matters for an edge deployment (a 1e-3 change of an identity
coefficient moves nothing; of a translation it moves the face by a pixel).

Tolerances (:data:`TOLERANCES`, overridable): fp32 1e-3 max |Δcoeff| and 0.05 px; fp16 2e-2 and
0.5 px; int8 only landmarks, 1.5 px (the aim is ≤ 1 px at 224; coefficients of an int8 model
legitimately differ by more than 1e-2).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recon_cli.atomic import atomic_write_text
from recon_cli.backends.base import EncoderBackend, layout_from_meta
from recon_cli.errors import ReconError
from recon_cli.render.camera import CameraConfig, project, transform


@dataclass(frozen=True)
class Tolerance:
    """``coeff``: max |Δcoeff| allowed (None: not checked); ``landmark_px``: max landmark shift."""

    coeff: float | None
    landmark_px: float | None


TOLERANCES = {"fp32": Tolerance(1e-3, 0.05), "fp16": Tolerance(2e-2, 0.5), "int8": Tolerance(None, 1.5)}


class ParityError(ReconError):
    """The exported encoder does not reproduce the PyTorch one within tolerance."""

    exit_code = 3


@dataclass
class ParityReport:
    """Result of :func:`check_parity` (all distances in coefficient units or crop pixels)."""

    precision: str
    n_crops: int
    max_abs_coeff: float
    mean_abs_coeff: float
    max_abs_coeff_by_group: dict[str, float]
    max_landmark_px: float | None
    mean_landmark_px: float | None
    tolerance: dict[str, Any]
    passed: bool
    reference: str = "torch"
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        lm = "n/a" if self.max_landmark_px is None else f"{self.max_landmark_px:.4f} px"
        verdict = "ok" if self.passed else "FAILED: " + "; ".join(self.failures)
        return f"{self.precision}: max |Δcoeff| {self.max_abs_coeff:.2e}, max landmark shift {lm} on {self.n_crops} crops — {verdict}"


def landmarks_px(coeffs: np.ndarray, layout, model, cam: CameraConfig) -> np.ndarray:
    """``coeffs (B, total)`` → the 68 model landmarks projected into the crop, ``(B, 68, 2)``
    float pixels (u right, v down), NumPy only."""
    parts = layout.split(np.asarray(coeffs, dtype=np.float32))
    verts = model.shape(parts["id"], parts["exp"])[:, model.landmarks68]  # (B, 68, 3) metres
    uv, _ = project(transform(verts, parts["angles"], parts["trans"]), cam)
    return uv


def compare(ref: np.ndarray, test: np.ndarray, layout, model=None, cam: CameraConfig | None = None) -> dict[str, Any]:
    """Distances between two coefficient batches ``(B, total)``: max/mean |Δ|, per group and,
    with ``model``, landmark displacement in pixels (max and mean over crops and landmarks)."""
    diff = np.abs(np.asarray(test, np.float64) - np.asarray(ref, np.float64))
    out: dict[str, Any] = {"max_abs_coeff": float(diff.max()), "mean_abs_coeff": float(diff.mean()),
                           "max_abs_coeff_by_group": {k: float(diff[:, s].max()) for k, s in layout.slices.items()},
                           "max_landmark_px": None, "mean_landmark_px": None}
    if model is not None:
        cam = cam or CameraConfig()
        d = np.linalg.norm(landmarks_px(test, layout, model, cam) - landmarks_px(ref, layout, model, cam), axis=-1)
        out.update(max_landmark_px=float(d.max()), mean_landmark_px=float(d.mean()))
    return out


def run_batched(backend: EncoderBackend, crops: np.ndarray, batch: int = 8) -> np.ndarray:
    """``backend`` over ``crops (N, 3, S, S)`` in batches → ``(N, total) float32``."""
    return np.concatenate([backend(crops[i:i + batch]) for i in range(0, len(crops), batch)], 0)


def check_parity(reference: EncoderBackend, candidate: EncoderBackend, crops: np.ndarray, *, model=None,
                 precision: str | None = None, tolerance: Tolerance | None = None, batch: int = 8,
                 ref_coeffs: np.ndarray | None = None) -> ParityReport:
    """Run both encoders on ``crops`` and compare (see the module docstring).

    ``model``: morphable model for the landmark check (must match the head's layout);
    ``ref_coeffs``: reuse reference outputs computed earlier.
    """
    precision = precision or candidate.meta.get("precision", "fp32")
    tol = tolerance or TOLERANCES.get(precision, TOLERANCES["fp32"])
    layout = layout_from_meta(reference.meta)
    ref = run_batched(reference, crops, batch) if ref_coeffs is None else ref_coeffs
    got = run_batched(candidate, crops, batch)
    cam = CameraConfig().scaled(int(reference.meta["size"]))
    m = compare(ref, got, layout, model, cam)
    failures = []
    if not np.isfinite(got).all():
        failures.append("non-finite outputs")
    if tol.coeff is not None and not m["max_abs_coeff"] <= tol.coeff:
        failures.append(f"max |Δcoeff| {m['max_abs_coeff']:.3g} > {tol.coeff:g}")
    if tol.landmark_px is not None and m["max_landmark_px"] is not None and not m["max_landmark_px"] <= tol.landmark_px:
        failures.append(f"max landmark shift {m['max_landmark_px']:.3g} px > {tol.landmark_px:g} px")
    return ParityReport(precision=precision, n_crops=len(crops), tolerance=asdict(tol), passed=not failures,
                        reference=getattr(reference, "name", "torch"), failures=failures, **m)


def parity_report_path(exported: str | Path) -> Path:
    """Where the JSON report of ``exported`` goes: ``<file>.parity.json`` beside it."""
    p = Path(exported)
    return p.with_name(p.name + ".parity.json")


def write_report(path: str | Path, payload: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, default=str) + "\n")
