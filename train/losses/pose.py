"""Pose terms (optional; off by default, not in the paper): a head-yaw label hinge and a depth bound.

Head yaw
--------

AFLW labels every face with a head pose estimated from its manual 2-D points and a mean 3-D face
(POSIT), so the label carries no 3-D scan information beyond the 2-D annotation. ``recon prep
--pts21`` stores it as ``extra.yaw_deg``. Its sign is the opposite of the model's: the model's yaw
(:mod:`recon_cli.coeffs`, rotation about +y, y up) is positive when the nose turns to the image's
right, AFLW's when it turns to the image's left. Measured with the v1.1 encoder on 2,000 AFLW
training crops: correlation −0.96 between the two.

Why it exists: the 68-point teacher (MediaPipe) under-turns profiles, so an encoder trained on it
saturates. With v1.1 the predicted |yaw| was 55° at a labelled 67°, 56° at 82° and 56° at 96°,
while it tracked the label within 2–4° below 45°.

The term is a hinge on the absolute angle error with a margin (the label noise; the near-frontal
disagreement between label and encoder is about 5°)::

    L_yaw = mean_b max(0, |ŷ_b − y_b| − m)      (radians; samples without a label are skipped)

so the well-posed small-angle pose is left to the landmarks and only a large miss is pulled in.

Depth bound
-----------
The aligner fixes the face's size in the crop, so the translation along the camera axis
(``trans[2]``, metres, +z towards the camera at ``camera.distance`` = 1 m) stays small: with v1.5
on the 384 held-out AFLW crops of the training runs the median t_z was 0.012 m. Nothing in the
paper's objective bounds it, though, and on faces turned past 90° (whose 68 teacher points are
unreliable) v1.5 put two faces 0.77 and 0.96 m towards the camera, where the perspective
projection explodes (3,332 and 430 px landmark error at 224). The bound is a hinge on |t_z| beyond a limit (metres)::

    L_depth = mean_b max(0, |t_z,b| − limit)

zero for every plausible face (limit 0.25 m: the face 0.75–1.25 m from the camera instead of 1 m,
drawn 0.8–1.33× its aligned size) and a constant pull back for the runaways.
"""

from __future__ import annotations

import torch
from torch import Tensor


def yaw_loss(pred: Tensor, label: Tensor, margin: float = 0.0) -> Tensor:
    """``pred, label: (B,)`` radians (label NaN = none), ``margin`` radians → scalar.

    The mean over the labelled samples of ``max(0, |pred − label| − margin)``; 0 (with a gradient
    path) when no sample has a label."""
    have = torch.isfinite(label)
    err = (pred - torch.where(have, label, pred.detach())).abs()
    hinge = torch.clamp(err - margin, min=0.0) * have.to(pred.dtype)
    return hinge.sum() / have.sum().clamp_min(1).to(pred.dtype)


class YawLoss(torch.nn.Module):
    """Module wrapper of :func:`yaw_loss` with a fixed margin (radians)."""

    def __init__(self, margin: float = 0.0):
        super().__init__()
        self.margin = float(margin)

    def forward(self, pred: Tensor, label: Tensor) -> Tensor:
        return yaw_loss(pred, label, self.margin)


def depth_loss(tz: Tensor, limit: float) -> Tensor:
    """``tz: (B,)`` translation along the camera axis, metres → scalar: ``mean max(0, |tz| − limit)``."""
    return torch.clamp(tz.abs() - float(limit), min=0.0).mean()
