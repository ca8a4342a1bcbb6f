"""Camera: Euler angles → rotation, rigid transform, perspective projection into the crop.

Frames (the contract used by the renderer, the losses, evaluation and the live pipeline):

* Model space (metres): +x image-right of a frontal face, +y up, +z towards the camera.
* Pose: ``v_world = R(angles) · v_model + trans`` with ``angles = (pitch, yaw, roll)`` in
  radians and ``R = Rz(roll) · Ry(yaw) · Rx(pitch)`` (right-handed rotations about the model's
  x, y, z axes); ``trans`` in metres.
* Camera: a pinhole at ``(0, 0, distance)`` looking down −z (Deep3DFaceRecon's convention, in
  metres): depth ``z_c = distance − z_world`` (positive in front of the camera).
* Crop pixels: ``u = cx + focal · x_world / z_c``, ``v = cy − focal · y_world / z_c``; origin at
  the top-left corner of the top-left pixel, so pixel (i, j) has its centre at (j + 0.5, i + 0.5);
  +v points down. Defaults suit a 224×224 crop: focal 1015 px, principal point (112, 112),
  distance 1 m: the default face's mean shape at zero pose lands centred in the crop, the size
  the aligner's template expects (:mod:`recon_cli.face.align`).

Both NumPy (torch-free runtime) and torch (training, differentiable) versions are provided;
functions dispatch on the argument type.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CameraConfig:
    """Pinhole camera of the crop. ``focal``/``cx``/``cy`` in pixels, ``distance`` in metres."""

    size: int = 224
    focal: float = 1015.0
    cx: float = 112.0
    cy: float = 112.0
    distance: float = 1.0

    def scaled(self, size: int) -> "CameraConfig":
        """The same camera for a crop of ``size`` pixels (focal and principal point scale)."""
        s = size / self.size
        return CameraConfig(size, self.focal * s, self.cx * s, self.cy * s, self.distance)


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def euler_to_rotation(angles):
    """``angles: (..., 3)`` (pitch, yaw, roll) radians → ``R: (..., 3, 3)``, ``R = Rz·Ry·Rx``."""
    if _is_torch(angles):
        import torch

        x, y, z = angles.unbind(-1)
        cx, sx, cy, sy, cz, sz = torch.cos(x), torch.sin(x), torch.cos(y), torch.sin(y), torch.cos(z), torch.sin(z)
        stack = lambda rows: torch.stack([torch.stack(r, -1) for r in rows], -2)  # noqa: E731
    else:
        angles = np.asarray(angles)
        x, y, z = angles[..., 0], angles[..., 1], angles[..., 2]
        cx, sx, cy, sy, cz, sz = np.cos(x), np.sin(x), np.cos(y), np.sin(y), np.cos(z), np.sin(z)
        stack = lambda rows: np.stack([np.stack(r, -1) for r in rows], -2)  # noqa: E731
    # Rz(roll) @ Ry(yaw) @ Rx(pitch), written out.
    return stack([
        [cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx],
        [sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx],
        [-sy, cy * sx, cy * cx],
    ])


def transform(verts, angles, trans):
    """Model → world: ``verts (B, V, 3)``, ``angles (B, 3)``, ``trans (B, 3)`` → ``(B, V, 3)`` metres."""
    R = euler_to_rotation(angles)
    if _is_torch(verts):
        return verts @ R.transpose(-1, -2) + trans[:, None, :]
    return np.einsum("bvj,bij->bvi", verts, R) + np.asarray(trans)[:, None, :]


def project(points, cam: CameraConfig = CameraConfig()):
    """World points ``(B, N, 3)`` metres → crop pixels ``(B, N, 2)`` (u right, v down) and
    depth ``z_c (B, N)`` in metres (positive in front of the camera)."""
    z = cam.distance - points[..., 2]
    if _is_torch(points):
        import torch

        zs = torch.where(z.abs() < 1e-6, torch.full_like(z, 1e-6), z)
        uv = torch.stack([cam.cx + cam.focal * points[..., 0] / zs, cam.cy - cam.focal * points[..., 1] / zs], -1)
    else:
        zs = np.where(np.abs(z) < 1e-6, 1e-6, z)
        uv = np.stack([cam.cx + cam.focal * points[..., 0] / zs, cam.cy - cam.focal * points[..., 1] / zs], -1)
    return uv, z


# ---------------------------------------------------------------------------- crop ↔ image
# ``M`` is the 2×3 similarity from the aligner (:mod:`recon_cli.face.align`): it maps original
# image pixels to crop pixels, ``[u, v] = M @ [x, y, 1]``, both in the pixel convention above
# (origin at the top-left corner of the top-left pixel, centres at +0.5). Points ``(..., 2)``.


def _affine(points, M):
    if _is_torch(points):
        import torch

        Mt = torch.as_tensor(M, dtype=points.dtype, device=points.device)
        return points @ Mt[..., :2].transpose(-1, -2) + Mt[..., 2]
    points, M = np.asarray(points), np.asarray(M, dtype=np.float64)
    return points @ np.swapaxes(M[..., :2], -1, -2) + M[..., 2]


def invert_similarity(M):
    """Inverse of a 2×3 affine map ``M (2, 3)`` (NumPy): the 2×3 matrix of ``M⁻¹``."""
    M = np.asarray(M, dtype=np.float64)
    if M.shape != (2, 3):
        raise ValueError(f"expected a 2×3 affine matrix, got shape {M.shape}")
    A = M[:, :2]
    det = np.linalg.det(A)
    if not np.isfinite(det) or abs(det) < 1e-12:
        raise ValueError(f"affine matrix is singular (det {det:g})")
    Ai = np.linalg.inv(A)
    return np.concatenate([Ai, -Ai @ M[:, 2:]], 1)


def image_to_crop(points, M):
    """Original-image pixels ``(..., 2)`` → crop pixels with the aligner's ``M (2, 3)``."""
    return _affine(points, np.asarray(M, dtype=np.float64))


def crop_to_image(points, M):
    """Crop pixels ``(..., 2)`` (e.g. projected landmarks, ``(B, 68, 2)``) → original-image
    pixels, inverting the aligner's ``M (2, 3)`` (original → crop). NumPy or torch."""
    return _affine(points, invert_similarity(M))
