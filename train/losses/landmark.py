"""Landmark loss: the wing loss (Feng et al., CVPR 2018) on 68 projected model landmarks.

    wing(x) = w · ln(1 + |x| / ε)     if |x| < w
              |x| − C                 otherwise,      C = w − w · ln(1 + w / ε)

with w = 10, ε = 2 (DESIGN.md). Units: pixels of the aligned crop (224 × 224 by default), so
w and ε are pixel distances.

Reduction (the paper gives only the weight 2.4e-3; this is our documented choice):

* ``per="point"`` (default): ``x`` is the Euclidean distance between a predicted and a
  detected landmark, one wing term per point (``sqrt(dx² + dy² + eps²)``, so the gradient is
  finite at a perfect match). ``per="coord"`` applies wing to ``|dx|`` and ``|dy|`` separately and
  adds the two terms, Feng et al.'s original per-coordinate form.
* per sample (``reduction="mean"``, default): weighted mean over points
  ``Σ_i v_i · wing_i / Σ_i v_i`` with per-point weights ``v`` (visibility 0/1 or emphasis
  weights; default 1), so the value is a mean over the visible points and does not depend on
  how many are visible; a sample with ``Σ v = 0`` contributes 0. ``reduction="sum"``:
  ``Σ_i v_i · wing_i`` (Feng et al.'s sum; 68× larger, rescale the weight). Batch: mean.

With a typical 3–5 px error a point costs ≈ 9–12, so ``2.4e-3 · L_lm`` ≈ 0.02–0.03, the same order
as Deep3DFaceRecon's 1.6e-3 × mean squared pixel error; a sum over 68 points or 136
coordinates would make the landmark term dominate the photometric one (3.0 × ~0.1).

:func:`extra_landmark_loss` is the same wing loss on extra labelled points (e.g. the 21 manual
AFLW landmarks mapped onto model vertices); coordinates that are NaN mark invisible points and
are masked out.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

_PER = ("point", "coord")
_REDUCTION = ("mean", "sum")


def wing(x: Tensor, w: float = 10.0, eps: float = 2.0) -> Tensor:
    """Elementwise wing function of a non-negative distance ``x`` (any shape, pixels)."""
    c = w - w * math.log(1.0 + w / eps)
    ax = x.abs()
    return torch.where(ax < w, w * torch.log1p(ax / eps), ax - c)


def _per_point(pred: Tensor, target: Tensor, w: float, eps: float, per: str, dist_eps: float) -> Tensor:
    d = pred - target  # (B, N, 2)
    if per == "point":
        return wing(torch.sqrt((d ** 2).sum(-1) + dist_eps ** 2), w, eps)
    if per == "coord":
        return wing(d, w, eps).sum(-1)
    raise ValueError(f"per must be one of {_PER}, got {per!r}")


def _weighted_mean(values: Tensor, weights: Tensor, reduction: str = "mean") -> Tensor:
    """``values, weights: (B, N)`` → scalar: mean over b of Σ_i v·x / Σ_i v (0 where Σ v = 0),
    or of Σ_i v·x for ``reduction="sum"``."""
    if reduction not in _REDUCTION:
        raise ValueError(f"reduction must be one of {_REDUCTION}, got {reduction!r}")
    num = (weights * values).sum(1)
    if reduction == "sum":
        return num.mean()
    den = weights.sum(1)
    per_sample = torch.where(den > 0, num / den.clamp_min(1e-12), torch.zeros_like(num))
    return per_sample.mean()


def landmark_loss(pred: Tensor, target: Tensor, weight: Tensor | None = None, *, w: float = 10.0,
                  eps: float = 2.0, per: str = "point", reduction: str = "mean", dist_eps: float = 1e-6) -> Tensor:
    """Wing loss between projected and detected landmarks.

    Args:
        pred: ``(B, N, 2)`` float, projected model landmarks, pixels of the crop (x right, y down).
        target: ``(B, N, 2)`` float, detected landmarks in the same frame (N = 68 normally).
        weight: ``(B, N)`` or ``(N,)`` float ≥ 0, per-point weights (visibility); ``None`` = 1.
        w, eps: wing parameters (pixels).
        per: ``"point"`` (Euclidean distance per point) or ``"coord"`` (per coordinate).
        reduction: ``"mean"`` (weighted mean over points) or ``"sum"`` (weighted sum).
        dist_eps: smoothing of the Euclidean distance at 0 (pixels).

    Returns:
        scalar tensor: batch mean of the per-sample weighted mean over points.
    """
    if pred.shape != target.shape or pred.dim() != 3 or pred.shape[-1] != 2:
        raise ValueError(f"pred and target must both be (B, N, 2); got {tuple(pred.shape)} and {tuple(target.shape)}")
    values = _per_point(pred, target, w, eps, per, dist_eps)
    if weight is None:
        weight = torch.ones_like(values)
    weight = weight.to(values.dtype).expand_as(values)
    return _weighted_mean(values, weight, reduction)


def extra_landmark_loss(pred: Tensor, target: Tensor, *, w: float = 10.0, eps: float = 2.0,
                        per: str = "point", reduction: str = "mean", dist_eps: float = 1e-6) -> Tensor:
    """Wing loss on extra labelled points where invisible points are NaN.

    Args:
        pred: ``(B, K, 2)`` float, projected model vertices mapped to the labelled points, pixels.
        target: ``(B, K, 2)`` float, manual labels in the same frame; a point with any NaN
            coordinate is invisible and ignored (no NaN reaches the value or the gradient).

    Returns:
        scalar tensor: batch mean of the per-sample mean over visible points (0 if none).
    """
    if pred.shape != target.shape or pred.dim() != 3 or pred.shape[-1] != 2:
        raise ValueError(f"pred and target must both be (B, K, 2); got {tuple(pred.shape)} and {tuple(target.shape)}")
    visible = ~torch.isnan(target).any(-1)  # (B, K)
    safe_target = torch.where(visible[..., None], target, pred.detach())
    values = _per_point(pred, safe_target, w, eps, per, dist_eps)
    return _weighted_mean(values, visible.to(values.dtype), reduction)


class LandmarkLoss(nn.Module):
    """``nn.Module`` wrapper of :func:`landmark_loss`."""

    def __init__(self, w: float = 10.0, eps: float = 2.0, per: str = "point", reduction: str = "mean"):
        super().__init__()
        if per not in _PER or reduction not in _REDUCTION:
            raise ValueError(f"per must be one of {_PER} and reduction one of {_REDUCTION}; got {per!r}, {reduction!r}")
        self.w, self.eps, self.per, self.reduction = w, eps, per, reduction

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return landmark_loss(pred, target, weight, w=self.w, eps=self.eps, per=self.per, reduction=self.reduction)
