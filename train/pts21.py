"""The AFLW 21-point manual labels expressed through the model's 68 landmarks.

AFLW annotates up to 21 points per face, only where they are visible (``recon prep --pts21``
stores them in crop pixels, NaN when invisible). The order is in *image* left/right (point 1 is
the brow corner on the image's left). Checked against MediaPipe's 68 points on the 4,356
near-frontal AFLW training crops (all six brow/eye corners and both mouth corners visible),
median label − landmark offset (dx, dy) and residual spread, px at 224::

    point                     68 landmark(s)           offset        spread   used
     1, 6 brow outer          17, 26                   ( 2.2, 0.5)   4.7–5.5  no
     2, 5 brow centre         19, 24                   ( 4.5, 4.0)   4.0–4.3  no
     3, 4 brow inner          21, 22                   (−3.3, 4.1)   4.3–4.5  no
     7,12 eye outer           36, 45                   (−0.6, 0.8)   2.7–3.0  yes
     8,11 eye centre          mean 37,38,40,41 / 43..  ( 0.5, 0.2)   2.6      yes
     9,10 eye inner           39, 42                   (−1.7,−0.6)   2.8      yes
    13,17 ears                —  (the model has no ears)                      no
    14,16 nose wing           31, 35                   ( 1.0,−4.7)   4.0–4.2  no
    15    nose centre         ⅔·30 + ⅓·33              ( 0.7, 0.2)   4.2      yes
    18,20 mouth corner        48, 54                   ( 1.7, 0.5)   3.0–3.2  yes
    19    mouth centre        mean 62, 66              ( 1.2, 0.6)   3.1      yes
    21    chin                8                        ( 1.3,−0.6)   5.3      yes

AFLW's brow and nose-wing points follow another convention than the iBUG 68 (4–5 px apart on a
frontal face: brow centre-line vs upper edge, alar crease vs nostril base); pulling the model's
iBUG landmark vertices onto them would bias the 68-point evaluation, so they are not used. The
11 used points are fixed convex combinations of landmark vertices: ``pts21 = W @ landmarks68``
with ``W`` ``(21, 68)``; rows of unused points are zero and :data:`USED` masks them out.
"""

from __future__ import annotations

import numpy as np
import torch

# AFLW point (0-based) → {68 landmark: weight}
_MAP: dict[int, dict[int, float]] = {
    6: {36: 1.0}, 7: {37: 0.25, 38: 0.25, 40: 0.25, 41: 0.25}, 8: {39: 1.0},
    9: {42: 1.0}, 10: {43: 0.25, 44: 0.25, 46: 0.25, 47: 0.25}, 11: {45: 1.0},
    14: {30: 2.0 / 3.0, 33: 1.0 / 3.0},
    17: {48: 1.0}, 18: {62: 0.5, 66: 0.5}, 19: {54: 1.0}, 20: {8: 1.0},
}
USED = np.array([k in _MAP for k in range(21)])  # (21,) bool: the 11 points the loss uses

# Horizontal mirror: AFLW point k becomes FLIP21[k] (image-left ↔ image-right).
FLIP21 = np.array([5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 16, 15, 14, 13, 12, 19, 18, 17, 20])


def weights_21x68() -> np.ndarray:
    """``(21, 68) float32``: row k is the convex combination of 68 landmarks for AFLW point k."""
    w = np.zeros((21, 68), np.float32)
    for k, combo in _MAP.items():
        for j, a in combo.items():
            w[k, j] = a
    return w


def project21(landmarks68: torch.Tensor) -> torch.Tensor:
    """``(B, 68, 2)`` projected model landmarks (crop px) → ``(B, 21, 2)`` AFLW points.

    Unused rows are zeros; mask the labels with :func:`mask_unused` before a loss."""
    w = torch.from_numpy(weights_21x68()).to(landmarks68)
    return torch.einsum("kn,bnc->bkc", w, landmarks68)


def mask_unused(pts21: torch.Tensor) -> torch.Tensor:
    """Labels ``(B, 21, 2)`` with the unused points (see the module docstring) set to NaN."""
    keep = torch.from_numpy(USED).to(pts21.device)[None, :, None]
    return torch.where(keep, pts21, torch.full_like(pts21, float("nan")))
