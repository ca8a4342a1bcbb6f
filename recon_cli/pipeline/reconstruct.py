"""Image + detected faces → 3-D faces in the original image (torch-free).

:class:`Reconstructor` is the one place where the runtime turns faces into reconstructions; the
live pipeline (:mod:`recon_cli.pipeline.run`) and evaluation both call it::

    faces (5 points each) ─ align (similarity M: original → 224 crop; a face sharper than the
      encoder's training faces is first shrunk to their resolution) ─ encoder backend (batched)
      ─ coefficients ─ NumPy decode + pose ─ project in the crop ─ M⁻¹ ─ original image pixels

Geometry (frames of :mod:`recon_cli.render.camera`): the encoder predicts the pose in the *crop
camera* (:func:`recon_cli.face.align.crop_camera`). An in-plane similarity ``M⁻¹`` (scale 1/s,
rotation φ, translation) maps the crop onto the original image, which is exactly the projection
through a *virtual camera* of the original image: focal ``f/s``, principal point ``M⁻¹(cx, cy)``,
rolled by ψ = −φ about its optical axis (φ = rotation of ``M⁻¹`` in y-down pixel axes, so ψ is
the roll in y-up axes; equivalently ψ = atan2(M[1, 0], M[0, 0]), the rotation of ``M`` itself).
The virtual camera looks through the face (its principal point is the face's crop centre, not
the image centre), so ``angles_img`` is the pose relative to the ray through the face; for a
face far off the image centre the pose relative to the real camera's axis differs by that ray's
angle (a few degrees for typical fields of view). Hence for every face:

* ``lm68``/``verts_img[:, :2]`` = ``M⁻¹ · project_crop(R·v + t)``: original image px;
* ``verts_cam = Rz(ψ) · (R·v + t) − (0, 0, distance)``: metres, the virtual camera at the
  origin, x right, y up, z towards the viewer (the face lies at z ≈ −distance) — the OpenGL /
  Open3D convention, and projecting it with the virtual camera gives ``verts_img[:, :2]``;
* ``verts_img[:, 2]``: depth in image pixels, positive towards the camera, zero at the mean
  depth of the face: ``(z̄_c − z_c) · (f/s) / z̄_c`` — the same px-per-metre scale as x, y at
  the face's mean depth (the 3DDFA convention for dense vertices in image space);
* ``angles_img``: (pitch, yaw, roll) rad of ``Rz(ψ)·R`` (same Euler convention as ``coeffs``),
  the head pose seen by the virtual camera; ``coeffs["angles"]`` stays the crop-frame pose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from recon_cli.coeffs import CoeffLayout
from recon_cli.errors import InputError
from recon_cli.pipeline import symmetry
from recon_cli.render.camera import CameraConfig, euler_to_rotation, project


@dataclass
class Reconstruction:
    """One reconstructed face (see the module docstring for every frame).

    Attributes:
        coeffs: views of the coefficient vector by group (``id (n_id)``, ``exp``, ``tex``,
            ``angles (3)`` rad crop frame, ``light (9|27)``, ``trans (3)`` m crop frame), float32.
        angles_img: ``(3,) float64`` pitch, yaw, roll rad in the face's virtual image camera.
        lm68: ``(68, 2) float32`` landmarks, original image px.
        lm68_crop: ``(68, 2) float32`` landmarks, crop px.
        verts_img: ``(V, 3) float32`` x, y original image px; z px towards the camera (None when
            built with ``dense=False``).
        verts_cam: ``(V, 3) float32`` metres, virtual camera frame (None with ``dense=False``).
        M: ``(2, 3) float64`` original → crop px; M_inv: crop → original.
        score: detection score; bbox: ``(4,)`` x0, y0, x1, y1 px (None when unknown);
        track_id: face track across frames (None for single images).
    """

    coeffs: dict[str, np.ndarray]
    angles_img: np.ndarray
    lm68: np.ndarray
    lm68_crop: np.ndarray
    verts_img: np.ndarray | None
    verts_cam: np.ndarray | None
    M: np.ndarray
    M_inv: np.ndarray
    score: float = 1.0
    bbox: np.ndarray | None = None
    track_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def vector(self) -> np.ndarray:
        """The full coefficient vector ``(total,) float32``."""
        return np.concatenate([np.atleast_1d(v) for v in self.coeffs.values()]).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON record (coefficients by group, pose, landmarks, M) for ``--save-coeffs``."""
        r = lambda a, n=4: np.round(np.asarray(a, dtype=np.float64), n).tolist()  # noqa: E731
        return {"track_id": self.track_id, "score": round(float(self.score), 4),
                "bbox": None if self.bbox is None else r(self.bbox, 2),
                "angles_img_deg": r(np.degrees(self.angles_img), 3),
                "coeffs": {k: r(v, 6) for k, v in self.coeffs.items()},
                "lm68": r(self.lm68, 2), "M": r(self.M, 6)}


def rotation_to_euler(R: np.ndarray) -> np.ndarray:
    """Inverse of :func:`recon_cli.render.camera.euler_to_rotation` (``R = Rz·Ry·Rx``):
    ``R (..., 3, 3)`` → ``(..., 3)`` (pitch, yaw, roll) rad, yaw in [−π/2, π/2]."""
    R = np.asarray(R, dtype=np.float64)
    yaw = -np.arcsin(np.clip(R[..., 2, 0], -1.0, 1.0))
    pitch = np.arctan2(R[..., 2, 1], R[..., 2, 2])
    roll = np.arctan2(R[..., 1, 0], R[..., 0, 0])
    return np.stack([pitch, yaw, roll], -1)


def invert_similarity(M: np.ndarray) -> np.ndarray:
    """Inverse of a ``(2, 3)`` affine map (original → crop) → ``(2, 3)`` (crop → original)."""
    A = np.asarray(M, dtype=np.float64)
    a, b, c, d = A[0, 0], A[0, 1], A[1, 0], A[1, 1]
    det = a * d - b * c
    if abs(det) < 1e-12:
        raise ValueError(f"alignment matrix is singular: {A.tolist()}")
    Ai = np.array([[d, -b], [-c, a]]) / det  # closed form (np.linalg.inv costs ~100× more for 2×2)
    return np.concatenate([Ai, -(Ai @ A[:, 2])[:, None]], 1)


def apply_affine(points: np.ndarray, M: np.ndarray) -> np.ndarray:
    """``points (..., 2)`` → ``M[:, :2] · p + M[:, 2]`` (float64)."""
    M = np.asarray(M, dtype=np.float64)
    return np.asarray(points, dtype=np.float64) @ M[:, :2].T + M[:, 2]


def crop_geometry(verts_world: np.ndarray, M: np.ndarray, cam: CameraConfig) -> dict[str, np.ndarray]:
    """Map crop-camera world points into the original image (the module docstring's formulas).

    Args:
        verts_world: ``(N, 3)`` metres: ``R·v + t`` in the crop camera's world frame.
        M: ``(2, 3)`` similarity original → crop px.
        cam: the crop camera.
    Returns:
        ``uv_crop (N, 2)``, ``uv_img (N, 2)`` px; ``depth_img (N,)`` px towards the camera;
        ``verts_cam (N, 3)`` m; ``roll`` ψ (rad) and ``scale`` s of ``M``.
    """
    M = np.asarray(M, dtype=np.float64)
    M_inv = invert_similarity(M)
    uv, zc = project(np.asarray(verts_world, dtype=np.float64)[None], cam)
    uv, zc = uv[0], zc[0]
    s = math.hypot(M[0, 0], M[1, 0])
    psi = -math.atan2(M_inv[1, 0], M_inv[0, 0])
    c, si = math.cos(psi), math.sin(psi)
    Rz = np.array([[c, -si, 0.0], [si, c, 0.0], [0.0, 0.0, 1.0]])
    verts_cam = np.asarray(verts_world, dtype=np.float64) @ Rz.T - np.array([0.0, 0.0, cam.distance])
    z_ref = float(zc.mean())
    depth_img = (z_ref - zc) * (cam.focal / s) / z_ref
    return {"uv_crop": uv, "uv_img": apply_affine(uv, M_inv), "depth_img": depth_img,
            "verts_cam": verts_cam, "roll": psi, "scale": s, "M_inv": M_inv}


SOURCE_RES = ("train", "native")


def _as_points5(face) -> np.ndarray:
    """A face (object with ``lm5``) or a ``(5, 2)`` array → ``(5, 2) float64``."""
    pts = getattr(face, "lm5", face)
    pts = np.asarray(pts, dtype=np.float64)
    if pts.shape != (5, 2):
        raise ValueError(f"expected 5 points (5, 2) per face, got shape {pts.shape}")
    return pts


class Reconstructor:
    """Aligned crops → encoder → coefficients → meshes and landmarks in the original image.

    Args:
        backend: an encoder backend (:func:`recon_cli.backends.load_backend`): ``(B, 3, S, S)
            float32 RGB [0, 1] → (B, total) float32``, with ``meta["layout"]``/``meta["size"]``.
        model: the morphable model the encoder was trained for (NumPy decode).
        align: :class:`recon_cli.face.align.AlignConfig` (crop size and ``source_scale`` are taken
            from the backend).
        max_batch: largest encoder batch (faces beyond it run in further calls).
        source_res: ``"train"`` (default): a photo sharper than the encoder's training faces is
            resampled to their resolution before the crop (the weights' ``meta["source_scale"]``;
            weights without it crop straight from the photo); ``"native"``: always straight from
            the photo. See :class:`recon_cli.face.align.AlignConfig`.
        yaw_symmetry: ``"on"`` (default): the yaw-dependent mean asymmetry the weights record
            (``meta["yaw_symmetry"]``) is removed from every prediction in :meth:`encode`
            (:mod:`recon_cli.pipeline.symmetry`; weights without it are used as they are);
            ``"off"``: the encoder's raw coefficients.
    """

    def __init__(self, backend, model, align=None, max_batch: int = 16, contour=None, source_res: str = "train",
                 yaw_symmetry: str = "on"):
        from recon_cli.backends.base import check_model_match, layout_from_meta
        from recon_cli.face.align import AlignConfig, crop_camera

        check_model_match(backend.meta, model)
        self.backend, self.model = backend, model
        self.layout: CoeffLayout = layout_from_meta(backend.meta)
        self.size = int(backend.meta.get("size", 224))
        base = align or AlignConfig()
        if source_res not in SOURCE_RES:
            raise InputError(f"source resolution must be one of {', '.join(SOURCE_RES)}, got {source_res!r}",
                             hint="--source-res train|native")
        scale = backend.meta.get("source_scale") if source_res == "train" else None
        self.align_cfg = AlignConfig(size=self.size, scale=base.scale, border=base.border,
                                     source_scale=None if scale is None else float(scale))
        self.cam = crop_camera(self.align_cfg)
        if yaw_symmetry not in symmetry.MODES:
            raise InputError(f"yaw symmetry must be one of {', '.join(symmetry.MODES)}, got {yaw_symmetry!r}",
                             hint="--yaw-symmetry on|off")
        self.symmetry = (symmetry.from_backend_meta(backend.meta, self.layout, str(getattr(backend, "path", "the weights")))
                         if yaw_symmetry == "on" else None)
        self.max_batch = max(1, int(max_batch))
        # optional landmark convention for the 68 points (e.g. recon_cli.eval.contour.HiddenContour):
        # ``apply(lm_model (N, 68, 3), R, trans, distance) -> (N, 68, 3)``; None = the model's vertices
        self.contour = contour
        lm = model.landmarks68
        # landmark-only decode (dense=False): the 68 rows of each basis
        self._lm_mean = model.mean_shape[lm].reshape(-1)
        self._lm_id = model.id_basis[:, lm].reshape(model.n_id, -1)
        self._lm_exp = model.exp_basis[:, lm].reshape(model.n_exp, -1)

    @property
    def symmetry_rule(self) -> str:
        """``"yaw"`` when :meth:`encode` removes the weights' yaw-dependent asymmetry, else ``"none"``
        (the name calibrations record as ``rules.symmetry``)."""
        return "none" if self.symmetry is None else "yaw"

    # ------------------------------------------------------------------ stages
    def align(self, image: np.ndarray, faces: Sequence) -> list:
        """``image (H, W, 3) uint8`` RGB + faces (objects with ``lm5`` or ``(5, 2)`` arrays, image
        px) → list of :class:`recon_cli.face.align.Aligned` (crop, M, M_inv)."""
        from recon_cli.face.align import align_face

        return [align_face(image, _as_points5(f), self.align_cfg) for f in faces]

    def encode(self, crops: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """``crops (N, S, S, 3) uint8`` RGB → ``(N, total) float32`` coefficients (batched), the
        yaw-symmetry correction applied when on (:attr:`symmetry`)."""
        crops = np.asarray(crops)
        if len(crops) == 0:
            return np.zeros((0, self.layout.total), np.float32)
        x = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32) * np.float32(1 / 255)
        out = [self.backend(x[i:i + self.max_batch]) for i in range(0, len(x), self.max_batch)]
        coeffs = np.concatenate(out, 0).astype(np.float32, copy=False)
        return coeffs if self.symmetry is None else self.symmetry.apply(coeffs, self.layout)

    def _landmark_verts(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        """The 68 landmark vertices ``(N, 68, 3)`` m, model space, decoded from the 68 rows of each basis."""
        flat = self._lm_mean[None] + parts["id"] @ self._lm_id + parts["exp"] @ self._lm_exp
        return flat.reshape(len(flat), 68, 3)

    def landmarks_model(self, coeffs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coefficients ``(N, total)`` → the 68 landmarks in model space ``(N, 68, 3)`` m (the scoring
        convention of :attr:`contour` applied when set), head rotations ``R (N, 3, 3)`` and
        translations ``(N, 3)`` m: world = ``R·v + t`` in the crop camera's frame."""
        parts = self.layout.split(np.asarray(coeffs, dtype=np.float32))
        lm = self._landmark_verts(parts).astype(np.float64)
        R = euler_to_rotation(parts["angles"].astype(np.float64))
        trans = parts["trans"].astype(np.float64)
        if self.contour is not None:
            lm = self.contour.apply(lm, R, trans, self.cam.distance)
        return lm, R, trans

    def build(self, coeffs: np.ndarray, Ms: np.ndarray, *, scores=None, bboxes=None, track_ids=None,
              dense: bool = True) -> list[Reconstruction]:
        """Coefficients ``(N, total)`` + similarities ``Ms (N, 2, 3)`` → reconstructions.

        ``dense=False`` decodes only the 68 landmarks (evaluation); ``verts_*`` are then None.
        """
        coeffs = np.asarray(coeffs, dtype=np.float32)
        n = len(coeffs)
        if n == 0:
            return []
        parts = self.layout.split(coeffs)
        if dense:
            verts = self.model.shape(parts["id"], parts["exp"])  # (N, V, 3) m, model space
        else:
            verts = self._landmark_verts(parts)
        R = euler_to_rotation(parts["angles"].astype(np.float64))
        trans = parts["trans"].astype(np.float64)
        world = np.einsum("bvj,bij->bvi", verts.astype(np.float64), R) + trans[:, None]
        lm_idx = self.model.landmarks68 if dense else slice(None)
        lm_world = None
        if self.contour is not None:
            lm = np.asarray(verts[:, self.model.landmarks68] if dense else verts, dtype=np.float64)
            lm_world = np.einsum("bvj,bij->bvi", self.contour.apply(lm, R, trans, self.cam.distance), R) + trans[:, None]
            if not dense:
                world, lm_world = lm_world, None
        out = []
        for i in range(n):
            g = crop_geometry(world[i], Ms[i], self.cam)
            g_lm, lm_sel = (g, lm_idx) if lm_world is None else (crop_geometry(lm_world[i], Ms[i], self.cam), slice(None))
            c, si = math.cos(g["roll"]), math.sin(g["roll"])
            Rz = np.array([[c, -si, 0.0], [si, c, 0.0], [0.0, 0.0, 1.0]])
            rec = Reconstruction(
                coeffs={k: v[i].copy() for k, v in parts.items()},
                angles_img=rotation_to_euler(Rz @ R[i]),
                lm68=g_lm["uv_img"][lm_sel].astype(np.float32),
                lm68_crop=g_lm["uv_crop"][lm_sel].astype(np.float32),
                verts_img=np.concatenate([g["uv_img"], g["depth_img"][:, None]], 1).astype(np.float32) if dense else None,
                verts_cam=g["verts_cam"].astype(np.float32) if dense else None,
                M=np.asarray(Ms[i], dtype=np.float64), M_inv=g["M_inv"],
                score=1.0 if scores is None else float(scores[i]),
                bbox=None if bboxes is None or bboxes[i] is None else np.asarray(bboxes[i], dtype=np.float32),
                track_id=None if track_ids is None else track_ids[i])
            out.append(rec)
        return out

    def albedo(self, rec: Reconstruction) -> np.ndarray:
        """Per-vertex albedo ``(V, 3) float32`` in [0, 1] (clipped) for coloured mesh output."""
        return np.clip(self.model.albedo(rec.coeffs["tex"][None])[0], 0.0, 1.0)

    # ------------------------------------------------------------------ all at once
    def __call__(self, image: np.ndarray, faces: Sequence, *, dense: bool = True) -> list[Reconstruction]:
        """``image (H, W, 3) uint8`` RGB + detected faces (with ``lm5``, optional ``score``/``bbox``)
        → one :class:`Reconstruction` per face, all faces in one batched encoder call."""
        if not len(faces):
            return []
        aligned = self.align(image, faces)
        coeffs = self.encode(np.stack([a.crop for a in aligned]))
        return self.build(coeffs, np.stack([a.M for a in aligned]), dense=dense,
                          scores=[getattr(f, "score", 1.0) for f in faces],
                          bboxes=[getattr(f, "bbox", None) for f in faces])
