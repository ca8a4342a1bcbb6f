"""AFLW's annotation convention for the scored 68 points, fitted on AFLW-train's held-out faces.

AFLW2000-3D's ground truth are fits to AFLW photos, whose annotators marked up to 21 points per
face. Several of those points have the same anatomical definition in the 68-point scheme, but the
encoder places them where its landmark teacher (MediaPipe's mesh, 300W convention, corrected to
the BFM's mean face by :func:`recon_cli.eval.contour.teacher_offsets`) puts them. AFLW-train's
manual labels say where AFLW's annotators put them instead: the brows on their centre line, 3–4 px
lower than the 300W upper edge at 224 px (:mod:`train.pts21` measured it on the teacher), the outer
brow ends further in.

:func:`fit` measures that gap on prepared faces with ``pts21`` labels that the encoder has not
trained on (``recon train``'s own validation split of the dataset, by default): for each AFLW point
``k`` in :data:`FIT` it finds the model-space offset ``δ_k`` (3-D, metres) that best moves the
encoder's projected point onto the label,

    min_δ  Σ_faces ρ(‖(label − p(δ)) / s‖),  p(δ) ≈ p(0) + J·R·δ   (J: projection Jacobian, R: head pose)

with ``s`` the face size (√(w·h) of the predicted 68-point box, px) and ρ Huber at 5 % of ``s``
(iteratively reweighted least squares). Faces at every yaw contribute, so the depth component is
measured on the turned faces. Left and right points are averaged through the mirror (x negated),
since the convention is symmetric.

:func:`expand68` turns the 21-point offsets into ``(68, 3)``: brows 17/19/21 and 22/24/26 (18, 20,
23, 25 take their neighbours' mean), eye corners 36/39/42/45, the eye centre onto 37/38/40/41 and
43/44/46/47, mouth corners 48/54, the mouth centre onto 62/66, the chin 8. The nose points are
left alone: AFLW's nose wings sit on the alar crease (the 68's 31/35 on the nostril base) and its
nose centre on the tip (30), not the same points. The ears have no 68 counterpart.

The offsets are added to the predicted landmarks in model space, on top of the inner-point and
jaw rules they were fitted with (:attr:`recon_cli.eval.contour.HiddenContour.inner`). They use no
AFLW2000-3D data. The file (JSON) records the encoder's SHA-256, the rules, the dataset and split,
and per point the number of faces and the residual before and after.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from recon_cli.errors import InputError

FORMAT = "recon-aflw21-calib/1"
SUFFIX = ".aflw21.json"  # beside the weights: default.pt → default.pt.aflw21.json

# AFLW point (0-based, image left/right as train.pts21 documents) → {68 landmark: weight}: the
# projected point compared with the label during the fit.
FIT: dict[int, dict[int, float]] = {
    0: {17: 1.0}, 1: {19: 1.0}, 2: {21: 1.0}, 3: {22: 1.0}, 4: {24: 1.0}, 5: {26: 1.0},
    6: {36: 1.0}, 7: {37: 0.25, 38: 0.25, 40: 0.25, 41: 0.25}, 8: {39: 1.0},
    9: {42: 1.0}, 10: {43: 0.25, 44: 0.25, 46: 0.25, 47: 0.25}, 11: {45: 1.0},
    17: {48: 1.0}, 18: {62: 0.5, 66: 0.5}, 19: {54: 1.0}, 20: {8: 1.0},
}
#: AFLW's 21 points in its own order (image left/right), for tables.
NAMES = ("brow outer L", "brow centre L", "brow inner L", "brow inner R", "brow centre R", "brow outer R",
         "eye outer L", "eye centre L", "eye inner L", "eye inner R", "eye centre R", "eye outer R",
         "ear L", "nose wing L", "nose centre", "nose wing R", "ear R", "mouth corner L", "mouth centre",
         "mouth corner R", "chin")
MIRROR = {0: 5, 1: 4, 2: 3, 6: 11, 7: 10, 8: 9, 17: 19}
MIRROR.update({v: k for k, v in list(MIRROR.items())})
# brow points between two AFLW points: the mean of their offsets
BETWEEN = {18: (0, 1), 20: (1, 2), 23: (3, 4), 25: (4, 5)}
HUBER = 0.05  # of the face size
MEDIAPIPE_NAME = "mediapipe.aflw21.json"  # the baseline's, shipped in recon_cli/weights
CANONICAL_M = 100.0  # MediaPipe's canonical face is in cm: canonical units per metre
#: the value of a rule that files fitted before it existed were fitted under
RULE_DEFAULTS = {"symmetry": "none"}


def weights_digest(path: str | Path) -> str:
    """SHA-256 of an encoder file (the calibration is valid for that encoder only)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def mediapipe_digest() -> str:
    """The identity of the ``mediapipe`` method's predictor: the MediaPipe release (its models ship inside it)."""
    import mediapipe

    return hashlib.sha256(f"mediapipe=={mediapipe.__version__} face mesh".encode()).hexdigest()


def point_jacobians(lm_model: np.ndarray, R: np.ndarray, trans: np.ndarray, cam) -> tuple[np.ndarray, np.ndarray]:
    """Projected points and their derivative by a model-space offset.

    ``lm_model (N, 68, 3)`` m, ``R (N, 3, 3)``, ``trans (N, 3)`` m, ``cam`` the crop camera
    (:class:`recon_cli.render.camera.CameraConfig`) → ``uv (N, 68, 2)`` crop px and
    ``d uv / d δ (N, 68, 2, 3)`` px per metre (world = ``R·(v + δ) + t``; :func:`recon_cli.render.camera.project`).
    """
    from recon_cli.render.camera import project

    w = np.einsum("bvj,bij->bvi", lm_model, R) + trans[:, None]
    uv, z = project(w, cam)
    J = np.zeros(w.shape[:2] + (2, 3))
    J[..., 0, 0] = cam.focal / z
    J[..., 0, 2] = cam.focal * w[..., 0] / z ** 2
    J[..., 1, 1] = -cam.focal / z
    J[..., 1, 2] = -cam.focal * w[..., 1] / z ** 2
    return uv, np.einsum("bvij,bjk->bvik", J, R)


@dataclass
class Rows:
    """Linearised residuals per AFLW point: ``A[k]`` list of ``(2, 3)``, ``r[k]`` list of ``(2,)``, both / face size."""

    A: dict[int, list] = field(default_factory=lambda: {k: [] for k in FIT})
    r: dict[int, list] = field(default_factory=lambda: {k: [] for k in FIT})

    def add(self, uv: np.ndarray, duv: np.ndarray, labels: np.ndarray) -> None:
        """One batch: ``uv (N, 68, 2)``, ``duv (N, 68, 2, 3)`` (:func:`point_jacobians`), ``labels (N, 21, 2)`` crop px, NaN = invisible."""
        size = np.sqrt(np.prod(uv.max(1) - uv.min(1), 1))
        for b in range(len(uv)):
            for k, combo in FIT.items():
                if not np.isfinite(labels[b, k]).all():
                    continue
                p = sum(a * uv[b, j] for j, a in combo.items())
                d = sum(a * duv[b, j] for j, a in combo.items())
                self.A[k].append(d / size[b])
                self.r[k].append((labels[b, k] - p) / size[b])


def solve(A: np.ndarray, r: np.ndarray, iters: int = 10, ridge: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Huber IRLS for one point: ``A (n, 2, 3)``, ``r (n, 2)`` → ``δ (3,)`` and the final residual norms ``(n,)``."""
    w = np.ones(len(r))
    d = np.zeros(3)
    for _ in range(iters):
        M = np.einsum("n,nij,nik->jk", w, A, A) + ridge * len(r) * np.eye(3)
        d = np.linalg.solve(M, np.einsum("n,nij,ni->j", w, A, r))
        e = np.linalg.norm(r - A @ d, axis=1)
        w = np.minimum(1.0, HUBER / np.maximum(e, 1e-12))
    return d, np.linalg.norm(r - A @ d, axis=1)


def symmetrise(delta: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Average each left/right pair through the mirror (model x negated); unpaired points as they are."""
    flip = np.array([-1.0, 1.0, 1.0])
    return {k: (v + flip * delta[MIRROR[k]]) / 2 if k in MIRROR else v for k, v in delta.items()}


def expand68(delta: dict[int, np.ndarray]) -> np.ndarray:
    """AFLW-point offsets (symmetrised) → ``(68, 3)`` metres, model space; zero where no point maps."""
    out = np.zeros((68, 3))
    for k, combo in FIT.items():
        out[list(combo)] = delta[k]
    for j, (a, b) in BETWEEN.items():
        out[j] = (delta[a] + delta[b]) / 2
    return out


@dataclass
class Calibration:
    """A fitted calibration: ``offsets (68, 3)`` metres in model space plus its provenance."""

    offsets: np.ndarray
    info: dict[str, Any]

    def settings(self) -> dict[str, Any]:
        """What an evaluation records of the calibration it applied (``settings.aflw21_calib``)."""
        return {"file": self.info.get("path"), "dataset": self.info.get("dataset"), "split": self.info.get("split"),
                "faces": self.info.get("faces")}

    def fits_rules(self, rules: dict[str, str]) -> bool:
        """Whether it was fitted on top of these scoring rules (``--calib auto`` applies it only then)."""
        fitted = {**RULE_DEFAULTS, **self.info.get("rules", {})}
        return all(fitted.get(k) == v for k, v in rules.items())

    def check(self, weights: str | Path | None, rules: dict[str, str]) -> None:
        """InputError unless made for this encoder file (None: MediaPipe's own points, the ``mediapipe``
        method) and these scoring rules (``{"contour", "inner"}``)."""
        src = self.info.get("path", "the calibration")
        digest = mediapipe_digest() if weights is None else weights_digest(weights)
        if self.info.get("weights_sha256") != digest:
            what = "MediaPipe's points" if weights is None else str(weights)
            how = "--method mediapipe --out FILE" if weights is None else f"--weights {weights}"
            raise InputError(f"{src} was fitted for another predictor than {what}",
                             hint=f"fit one with `recon eval calibrate DATASET {how}`, or pass --calib none")
        if not self.fits_rules(rules):
            raise InputError(f"{src} was fitted with the scoring rules {self.info.get('rules')}, not {rules}",
                             hint="use the same --contour/--inner as the fit, or pass --calib none")

    def save(self, path: str | Path) -> Path:
        from recon_cli.atomic import atomic_write_text

        doc = {"format": FORMAT, **{k: v for k, v in self.info.items() if k != "path"},
               "offsets_mm": np.round(self.offsets * 1000, 4).tolist()}
        atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        path = Path(path)
        hint = "fit one with `recon eval calibrate DATASET --weights W`, or pass --calib none"
        if not path.is_file():
            raise InputError(f"calibration file not found: {path}", hint=hint)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            off = np.asarray(doc["offsets_mm"], np.float64) / 1000
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path}: not a calibration file ({type(e).__name__}: {e})", hint=hint) from None
        if doc.get("format") != FORMAT or off.shape != (68, 3) or not np.isfinite(off).all():
            raise InputError(f"{path}: not a {FORMAT} file with 68×3 finite offsets", hint=hint)
        info = {k: v for k, v in doc.items() if k not in ("format", "offsets_mm")}
        info["path"] = str(path)
        return cls(offsets=off, info=info)


def resolve(path: str | Path | None, weights: str | Path | None, rules: dict[str, str],
            auto: bool = False) -> Calibration | None:
    """The calibration a predictor applies: None without ``path``; with ``auto`` (found, not asked
    for) also None when it was fitted on top of other rules; otherwise loaded and checked for
    ``weights`` (None: MediaPipe's points) and ``rules`` (:meth:`Calibration.check`)."""
    if path is None:
        return None
    cal = Calibration.load(path)
    if auto and not cal.fits_rules(rules):
        return None
    cal.check(weights, rules)
    return cal


def beside(weights: str | Path) -> Path:
    """Where a calibration for ``weights`` lives by default: ``W.pt`` → ``W.pt.aflw21.json`` (the full
    name, so that ``W.onnx`` and ``W.engine`` of one export each have their own)."""
    w = Path(weights)
    return w.with_name(w.name + SUFFIX)


def carry(src_weights: str | Path, dst_weights: str | Path) -> Path | None:
    """Copy the calibration of ``src_weights`` (when one is beside it and was fitted for that very
    file) to ``dst_weights`` (an export of the same encoder, e.g. ONNX), re-keyed to the new file's
    digest and recording where it came from; returns the path written, or None."""
    src = beside(src_weights)
    if not src.is_file():
        return None
    cal = Calibration.load(src)
    digest = weights_digest(src_weights)
    if cal.info.get("weights_sha256") != digest:
        return None  # stale: fitted for another file
    info = {**cal.info, "weights": Path(dst_weights).name, "weights_sha256": weights_digest(dst_weights),
            "carried_from": {"weights": Path(src_weights).name, "weights_sha256": digest}}
    return Calibration(cal.offsets, info).save(beside(dst_weights))


def fit(rec, samples: list, src_size: int, batch: int = 32,
        progress: Callable[[int], None] | None = None) -> tuple[dict[int, np.ndarray], dict[str, Any]]:
    """Fit the offsets with a :class:`recon_cli.pipeline.reconstruct.Reconstructor` ``rec`` whose
    ``contour`` holds the scoring rules. ``samples``: prepared faces (:class:`train.dataset_format.Sample`:
    ``crop`` path, ``pts21 (21, 2)`` crop px) whose crops are ``src_size`` px; crops and labels are
    scaled to the encoder's input size.

    Returns the symmetrised offsets per AFLW point (metres) and per-point statistics."""
    from recon_cli.face.io import read_rgb_square

    rows = Rows()
    for s0 in range(0, len(samples), batch):
        part = samples[s0:s0 + batch]
        lm, R, t = rec.landmarks_model(rec.encode(np.stack([read_rgb_square(s.crop, rec.size) for s in part])))
        uv, duv = point_jacobians(lm, R, t, rec.cam)
        rows.add(uv, duv, np.stack([np.asarray(s.pts21, np.float64) for s in part]) * (rec.size / src_size))
        if progress:
            progress(len(part))
    return _solve_rows(rows)


def fit_mediapipe(samples: list, inner, progress: Callable[[int], None] | None = None
                  ) -> tuple[dict[int, np.ndarray], dict[str, Any]]:
    """The same fit for the ``mediapipe`` method (MediaPipe's own points, no encoder): ``inner`` a
    :class:`recon_cli.eval.contour.TeacherInner`; each face's mesh comes from FaceMesh's landmark
    model on the 3DDFA ROI box of its stored 68 points (``sample.lm68``, crop px), as ``recon eval
    --crop gt`` runs it, at the crop's own size. The offsets are in MediaPipe's canonical frame, converted to metres
    (:data:`CANONICAL_M`) so that the file has one unit."""
    from recon_cli.eval.crops import roi_box_from_landmarks
    from recon_cli.face.io import read_rgb
    from recon_cli.face.roi_mesh import RoiFaceMesh

    rows = Rows()
    roi = RoiFaceMesh()
    try:
        for s in samples:
            mesh = roi.mesh(read_rgb(s.crop), roi_box_from_landmarks(np.asarray(s.lm68, np.float64).T))
            uv, J = inner.points_and_jacobian(mesh)
            rows.add(uv[None], np.broadcast_to(J * CANONICAL_M, (68, 2, 3))[None], np.asarray(s.pts21, np.float64)[None])
            if progress:
                progress(1)
    finally:
        roi.close()
    return _solve_rows(rows)


def _solve_rows(rows: Rows) -> tuple[dict[int, np.ndarray], dict[str, Any]]:
    raw, stats = {}, {}
    for k in FIT:
        if len(rows.r[k]) < 10:
            raise InputError(f"only {len(rows.r[k])} faces label AFLW point {k + 1}; the fit needs at least 10",
                             hint="use a larger split (--split all) or a dataset prepared with --pts21")
        A, r = np.asarray(rows.A[k]), np.asarray(rows.r[k])
        raw[k], after = solve(A, r)
        stats[str(k + 1)] = {"faces": len(r), "nme_before_pct": round(float(np.linalg.norm(r, axis=1).mean() * 100), 3),
                             "nme_after_pct": round(float(after.mean() * 100), 3),
                             "offset_mm": np.round(raw[k] * 1000, 3).tolist()}
    return symmetrise(raw), {"points": stats, "fitted": time.strftime("%Y-%m-%dT%H:%M:%S")}
