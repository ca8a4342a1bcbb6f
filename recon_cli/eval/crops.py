"""Ground-truth crops for ``--crop gt`` (the 3DDFA protocol) and their 5 alignment points.

3DDFA / 3DDFA-V2 / SynergyNet evaluate AFLW2000-3D on crops taken from the ground-truth
landmarks, not from a detector (3DDFA-V2 ``parse_roi_box_from_landmark``): the bounding box of
the 68 points is made square about its centre with side ``max(w, h)``, then enlarged to its
diagonal, ``side = sqrt(2) · max(w, h)``. Only this box is given to the method; no
ground-truth point positions leak into the crop beyond the box.

Our encoder expects a 224×224 crop made by the 5-point similarity alignment of
:mod:`recon_cli.face` (eye centres, nose tip, mouth corners → fixed target points). To feed it a
crop derived from the *box* only we define the similarity ``S`` that maps the GT box onto the
crop where the aligner puts a canonical face's box: the centre of the square landmark box goes to
``box_centre_crop`` and its side ``max(w, h)`` becomes ``box_side_crop`` pixels, with no rotation
(the box is axis-aligned, as in 3DDFA). The 5 "virtual" alignment points are the aligner's target
points mapped back through ``S⁻¹``; aligning them with the aligner's own similarity fit then
reproduces ``S`` exactly (an exact similarity is recovered exactly by a least-squares fit), so the
regular pipeline runs unchanged. ``box_centre_crop`` and ``box_side_crop`` are those of the
morphable model's mean 68 landmarks projected at zero pose by the crop camera
(:func:`canonical_box_in_crop`), the same projection the aligner's 5-point template comes from:
an encoder predicting the mean face frontal puts its landmarks' square box exactly on the GT one.

Frames: image pixels (x right, y down); the 2×3 matrices map original-image px → crop px.
"""

from __future__ import annotations

import math

import numpy as np

def roi_box_from_landmarks(pts: np.ndarray) -> np.ndarray:
    """3DDFA's square ROI box ``(x0, y0, x1, y1)`` px from landmarks ``pts: (2, N)`` px."""
    pts = np.asarray(pts, dtype=np.float64)
    x0, y0, x1, y1 = pts[0].min(), pts[1].min(), pts[0].max(), pts[1].max()
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = math.sqrt(2.0) * max(x1 - x0, y1 - y0)
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])


def square_landmark_box(pts: np.ndarray) -> tuple[float, float, float]:
    """Centre and side of the square box about the landmarks' bounding box: (cx, cy, max(w, h)) px."""
    pts = np.asarray(pts, dtype=np.float64)
    x0, y0, x1, y1 = pts[0].min(), pts[1].min(), pts[0].max(), pts[1].max()
    return (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)


def canonical_box_in_crop(model, cam) -> tuple[float, float, float]:
    """Square landmark box (cx, cy, side) in crop px of ``model``'s mean 68 landmarks at zero pose
    projected by the crop camera ``cam`` (:func:`recon_cli.face.align.crop_camera`): where the
    aligner puts a canonical face (its 5-point template comes from the same projection)."""
    from recon_cli.render.camera import project

    lm = np.asarray(model.mean_shape, dtype=np.float64)[model.landmarks68]
    uv, _ = project(lm[None], cam)
    return square_landmark_box(np.asarray(uv[0], dtype=np.float64).T)


def gt_box_transform(gt68: np.ndarray, box: tuple[float, float, float]) -> np.ndarray:
    """2×3 similarity (no rotation) mapping original px → crop px that puts the GT landmarks'
    square box (centre, side ``max(w, h)``) onto ``box = (cx, cy, side)`` crop px."""
    (tcx, tcy, tside) = box
    cx, cy, side = square_landmark_box(gt68)
    s = tside / max(side, 1e-6)
    return np.array([[s, 0.0, tcx - s * cx], [0.0, s, tcy - s * cy]])


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2×3 affine map."""
    a = np.vstack([np.asarray(m, dtype=np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(a)[:2]


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """``pts: (N, 2)`` → ``(N, 2)`` through the 2×3 map ``m``."""
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ np.asarray(m, dtype=np.float64)[:, :2].T + np.asarray(m, dtype=np.float64)[:, 2]


def virtual_five_points(gt68: np.ndarray, target5_crop: np.ndarray, box: tuple[float, float, float]) -> np.ndarray:
    """The 5 alignment points (5, 2) in original px whose alignment reproduces :func:`gt_box_transform`.

    ``target5_crop``: (5, 2) the aligner's fixed target points in crop px.
    """
    m = gt_box_transform(gt68, box)
    return apply_affine(invert_affine(m), np.asarray(target5_crop, dtype=np.float64))
