"""Training-time augmentation of an aligned crop: random similarity transform and mirror.

The paper does not describe augmentation; the defaults are those of Deep3DFaceRecon's PyTorch
training (shift ±10 px at 224, scale 1 ± 0.1, rotation ±10°, horizontal flip with p = 0.5), so the
encoder also sees the crop misalignments a detector makes at test time. Each is a
``data.aug_*`` config value; all zero = off.

Frames: points are continuous crop pixels (origin at the top-left corner of the top-left pixel,
x right, y down). The image and the region labels are warped with the same matrix (labels with
nearest-neighbour, so they stay labels); area outside the source becomes black / label 0 (out).
A flip mirrors x → S − x and renumbers the landmarks so that point k keeps its meaning (68: the
iBUG mirror order; 21: :data:`train.pts21.FLIP21`).

Randomness comes from ``np.random.default_rng([seed, epoch, index])``: the same sample in the
same epoch gets the same transform, so a resumed run sees exactly the data it would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from recon_cli.face.landmarks68 import MIRROR68
from train.pts21 import FLIP21

FLIP68 = MIRROR68  # iBUG 68 mirror order (recon_cli.face.landmarks68)


@dataclass(frozen=True)
class AugmentSettings:
    """``shift`` px at a 224 crop (scaled to the crop size), ``scale`` relative (1 ± scale),
    ``rotate`` degrees, ``flip`` probability."""

    shift: float = 10.0
    scale: float = 0.1
    rotate: float = 10.0
    flip: float = 0.5

    @property
    def active(self) -> bool:
        return any(v > 0 for v in (self.shift, self.scale, self.rotate, self.flip))


def random_transform(rng: np.random.Generator, size: int, s: AugmentSettings) -> tuple[np.ndarray, bool]:
    """A ``(2, 3)`` similarity in continuous crop px about the crop centre, and whether to mirror."""
    c = size / 2.0
    k = 1.0 + rng.uniform(-s.scale, s.scale) if s.scale > 0 else 1.0
    a = np.deg2rad(rng.uniform(-s.rotate, s.rotate)) if s.rotate > 0 else 0.0
    t = rng.uniform(-s.shift, s.shift, 2) * size / 224.0 if s.shift > 0 else np.zeros(2)
    flip = bool(s.flip > 0 and rng.random() < s.flip)
    A = k * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    M = np.concatenate([A, (np.array([c, c]) - A @ [c, c] + t)[:, None]], 1)
    if flip:  # x → S − x after the similarity
        M = np.array([[-1.0, 0.0, size], [0.0, 1.0, 0.0]]) @ np.vstack([M, [0.0, 0.0, 1.0]])
    return M, flip


def apply(image: np.ndarray, labels: np.ndarray, points: dict[str, np.ndarray], M: np.ndarray,
          flip: bool) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Warp ``image (S,S,3)``, ``labels (S,S)`` and every ``points[name] (N,2)`` (NaN rows stay
    NaN) by ``M`` (continuous px); with ``flip`` the 68- and 21-point sets are renumbered."""
    size = image.shape[0]
    # cv2 maps pixel-index coordinates: x_idx' = A·x_idx + (A·½ + t − ½)
    Mi = M.copy()
    Mi[:, 2] += M[:, :2] @ [0.5, 0.5] - 0.5
    img = cv2.warpAffine(image, Mi, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    lab = cv2.warpAffine(labels, Mi, (size, size), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
    out = {}
    for name, p in points.items():
        q = p @ M[:, :2].T + M[:, 2]
        if flip:
            q = q[FLIP68] if len(q) == 68 else q[FLIP21] if len(q) == 21 else q
        out[name] = q
    return img, lab, out
