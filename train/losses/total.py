"""The training objective: every loss term, weighted and summed (DESIGN.md's table).

    total = w_photo·L_photo + w_wing·L_wing + w_per·L_per + w_reg·L_reg + w_fre·L_fre
            (+ w_pts21·L_pts21, the optional wing term on manual 21-point labels)
            (+ w_yaw·L_yaw, the optional hinge on a head-yaw label, train.losses.pose)
            (+ w_depth·L_depth, the optional hinge on |trans z| beyond a limit, train.losses.pose)

Inputs (S = training crop side):

* ``batch``: ``image (B,3,S,S)`` RGB in [0,1]; ``face_mask (B,1,S,S)`` 0/1 face area (skin, not
  occluded); ``region_weight (B,1,S,S)`` per-pixel region weight W; ``lm68 (B,68,2)`` detected
  landmarks in crop pixels; optional ``lm68_weight (B,68)`` (visibility) and ``pts21 (B,21,2)``
  manual labels (NaN = invisible); optional ``yaw (B,)`` head-yaw label, model convention,
  radians (NaN = none).
* ``render_out`` (a mapping or an object with these attributes): ``image (B,3,S,S)`` the raw
  render, ``mask (B,1,S,S)`` its coverage in [0,1], ``landmarks (B,68,2)`` projected model
  landmarks in crop pixels; optional ``pts21 (B,21,2)`` projected vertices of the 21 labels.
* ``coeffs``: ``(B, total)`` with ``layout=``, or the split dict (``CoeffLayout.split``).

The render is composited over the input (``mask·render + (1 − mask)·image``) for the
photometric, identity and frequency terms (DESIGN.md). The photometric mask is
``P = face_mask × coverage``. Landmarks are compared in pixels of a 224 crop whatever S (both
sets scaled by ``224 / S``) because wing's w and ε are pixel distances.

Returned dict: the *unweighted* terms (``photo``, ``wing``, ``per``, ``reg``, ``fre``,
``fre_amp``, ``fre_phase``, ``pts21``, ``yaw``, ``depth``: only the enabled/available ones) and ``total``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import Tensor

from train.losses.frequency import amplitude_loss, phase_loss
from train.losses.identity import IdentityLoss
from train.losses.landmark import extra_landmark_loss, landmark_loss
from train.losses.photometric import photometric_loss
from train.losses.pose import depth_loss, yaw_loss
from train.losses.regularisation import RegWeights, regularisation_loss

ALL_TERMS = ("photo", "wing", "per", "reg", "fre")
REF_SIZE = 224


@dataclass
class LossWeights:
    """Weights of the terms (paper, DESIGN.md).

    ``w_fre`` is not in the paper: provisional 0.5, the trainer's ablation sets it. Measured on
    16 aligned real faces whose face ellipse was replaced by a blurred, dimmed copy (a stand-in
    for an untrained render): L_photo ≈ 0.11, FreLoss ≈ 0.59 (FA 0.003, FP 1.17 rad: the phase
    term dominates), L_per ≈ 0.63; so ``0.5·L_fre`` ≈ ``3.0·L_photo`` ≈ 0.3.
    """

    w_photo: float = 3.0
    w_wing: float = 2.4e-3
    w_per: float = 0.24
    w_reg: float = 4e-4
    w_fre: float = 0.5
    w_pts21: float = 0.0
    w_yaw: float = 0.0
    w_depth: float = 0.0


@dataclass
class LossOptions:
    """Parameters of the terms (defaults follow the paper / DESIGN.md)."""

    photo_normalise: str = "mask"  # "mask": ΣPW‖·‖/ΣP; "weighted": /ΣPW
    wing_w: float = 10.0
    wing_eps: float = 2.0
    wing_per: str = "point"  # "point": Euclidean distance per landmark; "coord": per coordinate
    wing_reduction: str = "mean"  # "mean": weighted mean over points; "sum": weighted sum
    reg: RegWeights = field(default_factory=RegWeights)
    fre_amplitude: str = "complex"  # "complex": |F_in − F_r|² (DESIGN); "amplitude": (|F_in| − |F_r|)²
    fre_wrap_phase: bool = False
    fre_alpha: float = 0.5  # FreLoss = α·FA + (1 − α)·FP
    yaw_margin: float = 0.0  # radians: the yaw hinge's dead zone
    depth_limit: float = 0.25  # metres: |trans z| free of the depth hinge
    ref_size: int = REF_SIZE  # landmarks are compared in pixels of a crop of this side


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def composite(render: Tensor, mask: Tensor, image: Tensor) -> Tensor:
    """Render over input: ``mask·render + (1 − mask)·image``; all ``(B,C,S,S)``/``(B,1,S,S)``."""
    return mask * render + (1.0 - mask) * image


def compute_losses(batch: Mapping[str, Any], render_out: Any, coeffs: Tensor | Mapping[str, Tensor], *,
                   enabled: set[str] | frozenset[str] | list[str] = frozenset(ALL_TERMS),
                   weights: LossWeights | None = None, options: LossOptions | None = None,
                   identity: IdentityLoss | None = None, layout=None, size: int | None = None) -> dict[str, Tensor]:
    """All enabled loss terms and their weighted ``total`` (see the module docstring).

    Args:
        enabled: subset of ``photo, wing, per, reg, fre``. ``per`` needs ``identity`` (a disabled
            identity network — missing file — simply leaves the term out; the builder warned).
        layout: :class:`~recon_cli.coeffs.CoeffLayout` when ``coeffs`` is the flat vector.
        size: crop side S (default: the image width).
    """
    weights = weights or LossWeights()
    options = options or LossOptions()
    enabled = set(enabled)
    unknown = enabled - set(ALL_TERMS)
    if unknown:
        raise ValueError(f"unknown loss term(s) {sorted(unknown)}; choose from {ALL_TERMS}")
    image = batch["image"]
    render, cover = _get(render_out, "image"), _get(render_out, "mask")
    size = int(size or image.shape[-1])
    comp = composite(render, cover, image)
    out: dict[str, Tensor] = {}
    total = image.new_zeros(())
    split: Mapping[str, Tensor] | None = coeffs if isinstance(coeffs, Mapping) else None

    def groups() -> Mapping[str, Tensor]:  # the coefficient groups, split once when a term needs them
        nonlocal split
        if split is None:
            split = _split(coeffs, layout)
        return split

    if "photo" in enabled:
        face = batch.get("face_mask")
        p = cover if face is None else face * cover
        out["photo"] = photometric_loss(comp, image, batch.get("region_weight"), p, normalise=options.photo_normalise)
        total = total + weights.w_photo * out["photo"]
    if "wing" in enabled:
        s = options.ref_size / size
        out["wing"] = landmark_loss(_get(render_out, "landmarks") * s, batch["lm68"] * s, batch.get("lm68_weight"),
                                    w=options.wing_w, eps=options.wing_eps, per=options.wing_per,
                                    reduction=options.wing_reduction)
        total = total + weights.w_wing * out["wing"]
        pred21, pts21 = _get(render_out, "pts21"), batch.get("pts21")
        if weights.w_pts21 > 0 and pred21 is not None and pts21 is not None:
            out["pts21"] = extra_landmark_loss(pred21 * s, pts21 * s, w=options.wing_w, eps=options.wing_eps,
                                               per=options.wing_per, reduction=options.wing_reduction)
            total = total + weights.w_pts21 * out["pts21"]
    if weights.w_yaw > 0 and batch.get("yaw") is not None:
        yaw = groups()["angles"][:, 1]
        out["yaw"] = yaw_loss(yaw, batch["yaw"].to(yaw.dtype), options.yaw_margin)
        total = total + weights.w_yaw * out["yaw"]
    if weights.w_depth > 0:
        out["depth"] = depth_loss(groups()["trans"][:, 2], options.depth_limit)
        total = total + weights.w_depth * out["depth"]
    if "per" in enabled and identity is not None:
        out["per"] = identity(image, comp)
        total = total + weights.w_per * out["per"]
    if "reg" in enabled:
        out["reg"] = regularisation_loss(groups(), options.reg)
        total = total + weights.w_reg * out["reg"]
    if "fre" in enabled:
        fa = amplitude_loss(image, comp, amplitude=options.fre_amplitude)
        fp = phase_loss(image, comp, wrap=options.fre_wrap_phase)
        out["fre_amp"], out["fre_phase"] = fa.detach(), fp.detach()
        out["fre"] = options.fre_alpha * fa + (1.0 - options.fre_alpha) * fp
        total = total + weights.w_fre * out["fre"]
    out["total"] = total
    return out


def _split(coeffs: Tensor, layout) -> dict[str, Tensor]:
    if layout is None:
        raise ValueError("compute_losses: pass layout= when coeffs is the flat (B, total) vector")
    return layout.split(coeffs)


def settings_from_config(cfg: Any) -> tuple[set[str], LossWeights, LossOptions]:
    """Map a losses config section (``train.config.LossConfig`` field names) to
    ``(enabled, LossWeights, LossOptions)``; absent fields keep the defaults."""
    w, o = LossWeights(), LossOptions()
    g = lambda name, default: getattr(cfg, name, default)  # noqa: E731
    weights = LossWeights(w_photo=g("w_photo", w.w_photo), w_wing=g("w_wing", w.w_wing), w_per=g("w_per", w.w_per),
                          w_reg=g("w_reg", w.w_reg), w_fre=g("w_fre", w.w_fre), w_pts21=g("w_pts21", w.w_pts21),
                          w_yaw=g("w_yaw", w.w_yaw), w_depth=g("w_depth", w.w_depth))
    reg = RegWeights(id=g("reg_id", o.reg.id), exp=g("reg_exp", o.reg.exp), tex=g("reg_tex", o.reg.tex),
                     light=g("reg_light", o.reg.light))
    options = LossOptions(photo_normalise=g("photo_normalise", o.photo_normalise), wing_w=g("wing_w", o.wing_w),
                          wing_eps=g("wing_eps", o.wing_eps), wing_per=g("wing_per", o.wing_per),
                          wing_reduction=g("wing_reduction", o.wing_reduction), reg=reg,
                          fre_amplitude=g("fre_amplitude", o.fre_amplitude),
                          fre_wrap_phase=g("fre_wrap_phase", o.fre_wrap_phase),
                          yaw_margin=math.radians(g("yaw_margin_deg", math.degrees(o.yaw_margin))),
                          depth_limit=g("depth_limit_m", o.depth_limit))
    enabled = set(g("enabled", ALL_TERMS))
    return enabled, weights, options


class Losses(torch.nn.Module):
    """Callable objective ``(batch, render_out, coeffs, size=None) -> dict`` for the trainer.

    Holds the settings and the (optional) identity network; ``coeffs`` is the flat vector.
    """

    def __init__(self, layout, *, enabled=frozenset(ALL_TERMS), weights: LossWeights | None = None,
                 options: LossOptions | None = None, identity: IdentityLoss | None = None):
        super().__init__()
        self.layout = layout
        self.enabled = set(enabled)
        self.weights = weights or LossWeights()
        self.options = options or LossOptions()
        self.identity = identity

    def forward(self, batch, render_out, coeffs, size: int | None = None) -> dict[str, Tensor]:
        return compute_losses(batch, render_out, coeffs, enabled=self.enabled, weights=self.weights,
                              options=self.options, identity=self.identity, layout=self.layout, size=size)
