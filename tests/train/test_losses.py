"""The paper's losses against direct float64 NumPy references, plus gradient checks."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from recon_cli.coeffs import CoeffLayout
from train.losses import (LossOptions, Losses, LossWeights, RegWeights, amplitude_loss, composite, compute_losses,
                          depth_loss, extra_landmark_loss, frequency_loss, identity_loss, landmark_loss,
                          light_colour_loss, phase_loss, photometric_loss, reflectance_loss, regularisation_loss,
                          safe_phase, settings_from_config, wing, yaw_loss, YawLoss)

gen = lambda seed: torch.Generator().manual_seed(seed)  # noqa: E731


def rnd(*shape, seed=0):
    return torch.rand(*shape, generator=gen(seed), dtype=torch.float64)


# ----------------------------------------------------------------------------------- photometric
def np_photo(render, target, weight, mask, eps=1e-6, normalise="mask"):
    r, t, w, m = (np.asarray(a, np.float64) for a in (render, target, weight, mask))
    out = []
    for b in range(r.shape[0]):
        d = np.sqrt(eps + ((r[b] - t[b]) ** 2).sum(0))
        num = (m[b, 0] * w[b, 0] * d).sum()
        den = (m[b, 0] * w[b, 0]).sum() if normalise == "weighted" else m[b, 0].sum()
        out.append(num / den if den > 0 else 0.0)
    return np.mean(out)


@pytest.mark.parametrize("normalise", ["mask", "weighted"])
def test_photometric_matches_reference(normalise):
    r, t = rnd(3, 3, 8, 9, seed=1), rnd(3, 3, 8, 9, seed=2)
    w = 1.0 + rnd(3, 1, 8, 9, seed=3)
    m = (rnd(3, 1, 8, 9, seed=4) > 0.4).double()
    m[2] = 0.0  # a sample without face pixels contributes 0
    got = photometric_loss(r, t, w, m, normalise=normalise)
    assert got.item() == pytest.approx(np_photo(r, t, w, m, normalise=normalise), rel=1e-12)


def test_photometric_is_an_unsquared_norm():
    # a uniform RGB difference of (0.3, 0.4, 0) has per-pixel norm 0.5 → loss 0.5 (not 0.25)
    t = torch.zeros(1, 3, 4, 4, dtype=torch.float64)
    r = t.clone()
    r[:, 0], r[:, 1] = 0.3, 0.4
    m = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    assert photometric_loss(r, t, None, m, eps=0.0).item() == pytest.approx(0.5)


def test_photometric_region_weights_and_empty_mask_gradients():
    r = rnd(2, 3, 6, 6, seed=5).requires_grad_()
    t = rnd(2, 3, 6, 6, seed=6)
    m = torch.ones(2, 1, 6, 6, dtype=torch.float64)
    m[1] = 0
    w = torch.ones_like(m)
    base = photometric_loss(r, t, w, m)
    w2 = w.clone()
    w2[0, 0, :3] = 1.5  # "eyes"
    assert photometric_loss(r, t, w2, m) > base
    photometric_loss(r, t, w2, m).backward()
    assert torch.isfinite(r.grad).all() and r.grad[1].abs().sum() == 0


def test_photometric_gradcheck():
    r = rnd(2, 3, 4, 5, seed=7).requires_grad_()
    t, w, m = rnd(2, 3, 4, 5, seed=8), 1 + rnd(2, 1, 4, 5, seed=9), rnd(2, 1, 4, 5, seed=10)
    assert torch.autograd.gradcheck(lambda x: photometric_loss(x, t, w, m), (r,))


# -------------------------------------------------------------------------------------- landmarks
def np_wing(x, w=10.0, eps=2.0):
    x = np.abs(x)
    c = w - w * np.log(1 + w / eps)
    return np.where(x < w, w * np.log(1 + x / eps), x - c)


def test_wing_function_values_and_continuity():
    x = torch.tensor([0.0, 1.0, 9.999999, 10.0, 25.0], dtype=torch.float64)
    np.testing.assert_allclose(wing(x).numpy(), np_wing(x.numpy()), rtol=1e-12)
    assert wing(torch.tensor(10.0 - 1e-9, dtype=torch.float64)).item() == pytest.approx(wing(torch.tensor(10.0)).item(), abs=1e-6)
    assert wing(torch.tensor(2.0)).item() == pytest.approx(10 * math.log(2.0))


@pytest.mark.parametrize("per", ["point", "coord"])
def test_landmark_loss_matches_reference(per):
    pred = rnd(3, 68, 2, seed=11) * 224
    tgt = pred + (rnd(3, 68, 2, seed=12) - 0.5) * 40  # errors on both sides of w = 10
    vis = (rnd(3, 68, seed=13) > 0.2).double()
    vis[2] = 0
    got = landmark_loss(pred, tgt, vis, per=per, dist_eps=0.0)
    d = (pred - tgt).numpy()
    per_pt = np_wing(np.linalg.norm(d, axis=-1)) if per == "point" else np_wing(d).sum(-1)
    v = vis.numpy()
    ref = np.mean([(v[b] * per_pt[b]).sum() / v[b].sum() if v[b].sum() > 0 else 0.0 for b in range(3)])
    assert got.item() == pytest.approx(ref, rel=1e-10)
    summed = landmark_loss(pred, tgt, vis, per=per, reduction="sum", dist_eps=0.0)
    assert summed.item() == pytest.approx(np.mean((v * per_pt).sum(1)), rel=1e-10)


def test_landmark_loss_gradcheck_and_zero_error_gradient():
    pred = (rnd(2, 5, 2, seed=14) * 30).requires_grad_()
    tgt = rnd(2, 5, 2, seed=15) * 30
    wts = rnd(5, seed=16) + 0.5
    for per in ("point", "coord"):
        assert torch.autograd.gradcheck(lambda p: landmark_loss(p, tgt, wts, per=per), (pred,))
    same = pred.detach().clone().requires_grad_()
    landmark_loss(same, same.detach()).backward()
    assert torch.isfinite(same.grad).all()


def test_extra_landmarks_mask_nan_points():
    pred = (rnd(2, 21, 2, seed=17) * 100).requires_grad_()
    tgt = pred.detach() + 3.0
    tgt[0, :5] = float("nan")
    tgt[1] = float("nan")  # no visible point at all → 0 for that sample
    loss = extra_landmark_loss(pred, tgt)
    ref = np_wing(np.full(16, 3.0 * math.sqrt(2))).mean() / 2
    assert loss.item() == pytest.approx(ref, rel=1e-9)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    assert pred.grad[0, :5].abs().sum() == 0 and pred.grad[1].abs().sum() == 0


# -------------------------------------------------------------------------------- regularisation
def test_regularisation_matches_reference_and_paper_weights():
    assert RegWeights() == RegWeights(1e-4, 0.8e-4, 1e-1, 1e-2)
    layout = CoeffLayout(6, 4, 5, 27)
    c = layout.split((rnd(3, layout.total, seed=18) - 0.5) * 4)
    got = regularisation_loss(c)
    n = {k: v.numpy() for k, v in c.items()}
    ref = np.mean(1e-4 * (n["id"] ** 2).sum(1) + 0.8e-4 * (n["exp"] ** 2).sum(1)
                  + 1e-1 * (n["tex"] ** 2).sum(1) + 1e-2 * (n["light"] ** 2).sum(1))
    assert got.item() == pytest.approx(ref, rel=1e-12)
    flat = ((rnd(2, layout.total, seed=19) - 0.5)).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: regularisation_loss(layout.split(x)), (flat,))


def test_deep3d_extra_regularisers():
    assert light_colour_loss(torch.ones(2, 9)).item() == 0.0
    white_rgb = torch.arange(9.0).repeat(2, 3)  # same SH per channel → monochrome
    assert light_colour_loss(white_rgb).item() == pytest.approx(0.0)
    g = rnd(2, 27, seed=20)
    gg = g.numpy().reshape(2, 3, 9)
    assert light_colour_loss(g).item() == pytest.approx(((gg - gg.mean(1, keepdims=True)) ** 2).mean())
    alb, skin = rnd(2, 7, 3, seed=21), torch.tensor([1, 1, 0, 1, 0, 1, 1.0], dtype=torch.float64)
    a, s = alb.numpy(), skin.numpy().astype(bool)
    ref = sum(((a[b, s] - a[b, s].mean(0)) ** 2).sum() for b in range(2)) / (2 * s.sum())
    assert reflectance_loss(alb, skin).item() == pytest.approx(ref)


# ------------------------------------------------------------------------------------- frequency
def np_freq(a, b, amplitude="complex", wrap=False):
    fa, fb = np.fft.fft2(a, norm="ortho"), np.fft.fft2(b, norm="ortho")
    amp = np.mean(np.abs(fa - fb) ** 2) if amplitude == "complex" else np.mean((np.abs(fa) - np.abs(fb)) ** 2)
    # documented convention: bins that are real for a real image (DC, Nyquist) have phase 0 or +π
    # (their rounding-noise imaginary part is dropped); NumPy's own FFT leaves ±1e-17 there
    real = np.zeros(a.shape[-2:], bool)
    real[np.ix_([0, a.shape[-2] // 2], [0, a.shape[-1] // 2])] = True
    ang = lambda f: np.angle(np.where(real, f.real + 0j, f))  # noqa: E731
    d = ang(fa) - ang(fb)
    if wrap:
        d = np.arctan2(np.sin(d), np.cos(d))
    return amp, np.mean(np.abs(d))


@pytest.mark.parametrize("amplitude", ["complex", "amplitude"])
@pytest.mark.parametrize("wrap", [False, True])
def test_frequency_matches_numpy_fft(amplitude, wrap):
    a, b = rnd(2, 3, 8, 6, seed=22), rnd(2, 3, 8, 6, seed=23)
    fa, fp = np_freq(a.numpy(), b.numpy(), amplitude, wrap)
    assert amplitude_loss(a, b, amplitude=amplitude).item() == pytest.approx(fa, rel=1e-10)
    assert phase_loss(a, b, wrap=wrap).item() == pytest.approx(fp, rel=1e-10)
    assert frequency_loss(a, b, amplitude=amplitude, wrap=wrap).item() == pytest.approx(0.5 * fa + 0.5 * fp, rel=1e-10)


def test_complex_amplitude_loss_is_parseval_mse():
    a, b = rnd(2, 3, 16, 16, seed=24), rnd(2, 3, 16, 16, seed=25)
    assert amplitude_loss(a, b).item() == pytest.approx(((a - b) ** 2).mean().item(), rel=1e-10)


def test_frequency_gradcheck():
    a = rnd(1, 2, 5, 4, seed=26)
    b = rnd(1, 2, 5, 4, seed=27).requires_grad_()
    for amplitude in ("complex", "amplitude"):
        for wrap in (False, True):
            assert torch.autograd.gradcheck(lambda x: frequency_loss(a, x, amplitude=amplitude, wrap=wrap), (b,))


def test_phase_is_safe_at_zero_magnitude():
    z = torch.zeros(4, dtype=torch.complex128, requires_grad=True)
    safe_phase(z).sum().backward()
    assert torch.isfinite(z.grad).all()
    # constant and all-zero images: most DFT coefficients are exactly 0
    a = torch.zeros(2, 3, 8, 8, dtype=torch.float64)
    b = torch.full((2, 3, 8, 8), 0.5, dtype=torch.float64, requires_grad=True)
    for wrap in (False, True):
        for amplitude in ("complex", "amplitude"):
            loss = frequency_loss(a, b, wrap=wrap, amplitude=amplitude)
            (g,) = torch.autograd.grad(loss, b)
            assert torch.isfinite(loss) and torch.isfinite(g).all()
    # DC of the constant 0.5 image is real positive, zero image's DC is 0 → phase 0 both: FP = 0
    assert phase_loss(a, b).item() == 0.0


# -------------------------------------------------------------------------------------- identity
def test_identity_loss_matches_reference_and_gradcheck():
    fa, fb = rnd(3, 16, seed=28) - 0.5, (rnd(3, 16, seed=29) - 0.5).requires_grad_()
    a, b = fa.numpy(), fb.detach().numpy()
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert identity_loss(fa, fb).item() == pytest.approx(np.mean(1 - cos), rel=1e-12)
    assert identity_loss(fa, fa).item() == pytest.approx(0.0, abs=1e-12)
    assert torch.autograd.gradcheck(lambda x: identity_loss(fa, x), (fb,))


# ----------------------------------------------------------------------------------------- total
def _batch_and_render(S=32, B=2, seed=30):
    img = rnd(B, 3, S, S, seed=seed)
    face = torch.zeros(B, 1, S, S, dtype=torch.float64)
    face[..., 4:-4, 6:-6] = 1
    region = torch.ones_like(face)
    region[..., 8:12, :] = 1.5
    lm = rnd(B, 68, 2, seed=seed + 1) * S
    cover = torch.zeros_like(face)
    cover[..., 2:-2, 2:-2] = 1
    render = rnd(B, 3, S, S, seed=seed + 2).requires_grad_()
    pred_lm = (lm + 1.5).requires_grad_()
    batch = {"image": img, "face_mask": face, "region_weight": region, "lm68": lm}
    return batch, {"image": render, "mask": cover, "landmarks": pred_lm}


def test_loss_weights_defaults_are_the_papers():
    w = LossWeights()
    assert (w.w_photo, w.w_wing, w.w_per, w.w_reg) == (3.0, 2.4e-3, 0.24, 4e-4)
    assert w.w_fre > 0


def test_compute_losses_total_is_the_weighted_sum_and_uses_the_composite():
    layout = CoeffLayout(6, 4, 5)
    S = 32
    batch, out = _batch_and_render(S)
    coeffs = ((rnd(2, layout.total, seed=40) - 0.5) * 2).requires_grad_()
    terms = compute_losses(batch, out, coeffs, layout=layout, size=S, enabled={"photo", "wing", "reg", "fre"})
    w = LossWeights()
    assert set(terms) == {"photo", "wing", "reg", "fre", "fre_amp", "fre_phase", "total"}
    expect = 3.0 * terms["photo"] + 2.4e-3 * terms["wing"] + 4e-4 * terms["reg"] + w.w_fre * terms["fre"]
    assert terms["total"].item() == pytest.approx(expect.item(), rel=1e-12)
    comp = composite(out["image"], out["mask"], batch["image"])
    assert terms["photo"].item() == pytest.approx(
        photometric_loss(comp, batch["image"], batch["region_weight"], batch["face_mask"] * out["mask"]).item())
    assert terms["fre"].item() == pytest.approx(frequency_loss(batch["image"], comp).item())
    # landmarks compared in 224-crop pixels: a 1.5 px offset at S = 32 is 10.5 px at 224
    assert terms["wing"].item() == pytest.approx(np_wing(1.5 * math.sqrt(2) * 224 / S), rel=1e-6)
    terms["total"].backward()
    for t in (out["image"], out["landmarks"], coeffs):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
    # pixels outside the render coverage come from the input: no gradient to the render there
    assert out["image"].grad[..., :2, :].abs().sum() == 0


def test_compute_losses_subset_pts21_and_module_wrapper():
    layout = CoeffLayout(6, 4, 5)
    batch, out = _batch_and_render(24)
    batch["pts21"] = torch.full((2, 21, 2), float("nan"), dtype=torch.float64)
    batch["pts21"][:, :10] = 5.0
    out["pts21"] = torch.full((2, 21, 2), 7.0, dtype=torch.float64)
    coeffs = torch.zeros(2, layout.total, dtype=torch.float64)
    terms = Losses(layout, enabled={"wing"}, weights=LossWeights(w_pts21=0.5))(batch, out, coeffs, 24)
    assert set(terms) == {"wing", "pts21", "total"}
    assert torch.isfinite(terms["total"]) and terms["pts21"] > 0
    # "per" without an identity network is left out, never NaN
    terms = compute_losses(batch, out, layout.split(coeffs), enabled={"per", "reg"})
    assert set(terms) == {"reg", "total"} and terms["total"].item() == 0.0
    with pytest.raises(ValueError, match="unknown loss"):
        compute_losses(batch, out, coeffs, enabled={"photo", "lpips"}, layout=layout)


# ----------------------------------------------------------------------------------- yaw label
def test_yaw_hinge_matches_reference_skips_missing_labels_and_gradchecks():
    pred = torch.tensor([0.10, 1.00, -0.50, -1.2, 0.3], dtype=torch.float64)
    label = torch.tensor([0.12, 0.50, float("nan"), -0.4, float("nan")], dtype=torch.float64)
    m = math.radians(5.0)
    have = np.isfinite(label.numpy())
    ref = np.maximum(np.abs(pred.numpy() - np.nan_to_num(label.numpy()))[have] - m, 0).mean()
    assert yaw_loss(pred, label, m).item() == pytest.approx(ref, rel=1e-12)
    assert YawLoss(m)(pred, label).item() == pytest.approx(ref, rel=1e-12)
    # within the margin nothing pulls; beyond it the pull is the sign of the error / labelled count
    p = pred.clone().requires_grad_()
    yaw_loss(p, label, m).backward()
    assert p.grad.tolist() == pytest.approx([0.0, 1 / 3, 0.0, -1 / 3, 0.0])
    q = torch.tensor([0.3, -0.9, 0.2], dtype=torch.float64, requires_grad=True)
    lab = torch.tensor([0.0, 0.1, float("nan")], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: yaw_loss(x, lab, 0.05), (q,))
    # no labels at all: zero, finite, still differentiable
    none = torch.full((3,), float("nan"), dtype=torch.float64)
    v = yaw_loss(q, none, m)
    v.backward()
    assert v.item() == 0.0 and torch.isfinite(q.grad).all()


def test_compute_losses_adds_the_yaw_term_only_when_weighted_and_labelled():
    layout = CoeffLayout(6, 4, 5)
    batch, out = _batch_and_render(24)
    coeffs = torch.zeros(2, layout.total, dtype=torch.float64)
    coeffs[:, layout.slices["angles"].start + 1] = torch.tensor([0.9, -0.2])  # yaw, rad
    batch["yaw"] = torch.tensor([1.4, float("nan")], dtype=torch.float64)
    opts = LossOptions(yaw_margin=0.1)
    assert "yaw" not in compute_losses(batch, out, coeffs, layout=layout, size=24, enabled={"reg"}, options=opts)
    terms = compute_losses(batch, out, coeffs, layout=layout, size=24, enabled={"reg"},
                           weights=LossWeights(w_yaw=2.0), options=opts)
    assert terms["yaw"].item() == pytest.approx(0.4)
    assert terms["total"].item() == pytest.approx(4e-4 * terms["reg"].item() + 2.0 * 0.4)
    _, _, o = settings_from_config(SimpleNamespace(yaw_margin_deg=5.0))
    assert o.yaw_margin == pytest.approx(math.radians(5.0))


def test_depth_hinge_is_zero_inside_the_limit_and_pulls_runaways_back():
    tz = torch.tensor([0.01, -0.2, 0.96, -0.5], dtype=torch.float64, requires_grad=True)
    v = depth_loss(tz, 0.25)
    assert v.item() == pytest.approx((0.96 - 0.25 + 0.5 - 0.25) / 4)
    v.backward()
    # inside the limit: no gradient; beyond it: towards zero depth offset (+ for negative, − for positive)
    assert tz.grad.tolist() == pytest.approx([0.0, 0.0, 0.25, -0.25])
    layout = CoeffLayout(6, 4, 5)
    batch, out = _batch_and_render(24)
    coeffs = torch.zeros(2, layout.total, dtype=torch.float64)
    coeffs[:, layout.slices["trans"].start + 2] = torch.tensor([0.05, 0.85])  # metres towards the camera
    assert "depth" not in compute_losses(batch, out, coeffs, layout=layout, size=24, enabled={"reg"})
    _, w, o = settings_from_config(SimpleNamespace(w_depth=3.0, depth_limit_m=0.35))
    terms = compute_losses(batch, out, coeffs, layout=layout, size=24, enabled={"reg"}, weights=w, options=o)
    assert terms["depth"].item() == pytest.approx(0.5 * 0.5)
    assert terms["total"].item() == pytest.approx(w.w_reg * terms["reg"].item() + 3.0 * 0.25)


def test_settings_from_config_maps_the_trainer_fields():
    cfg = SimpleNamespace(enabled=["photo", "fre"], w_photo=2.0, w_fre=0.7, wing_w=8.0, reg_tex=0.2,
                          fre_amplitude="amplitude", fre_wrap_phase=True)
    enabled, w, o = settings_from_config(cfg)
    assert enabled == {"photo", "fre"} and w.w_photo == 2.0 and w.w_fre == 0.7 and w.w_wing == 2.4e-3
    assert o.wing_w == 8.0 and o.reg.tex == 0.2 and o.reg.id == 1e-4
    assert o.fre_amplitude == "amplitude" and o.fre_wrap_phase and isinstance(o, LossOptions)


def test_every_term_reaches_the_encoder_through_the_real_renderer(shared_data):
    """Integration: encoder → real renderer (shipped ICT model) → all five terms → finite,
    non-zero gradients on the encoder head (reg at non-zero coefficients)."""
    from recon_cli.encoders import build_encoder
    from recon_cli.morphable import load_default_model
    from recon_cli.render.camera import CameraConfig
    from recon_cli.render.renderer import RenderConfig, Renderer
    from train.losses import build_identity_loss

    torch.manual_seed(0)
    model = load_default_model()
    layout = CoeffLayout.for_model(model)
    S = 64
    renderer = Renderer(model, RenderConfig(camera=CameraConfig().scaled(S)))
    enc = build_encoder("mobilenet_v3_small", layout, S)
    with torch.no_grad():
        enc.head.fc.bias.normal_(0, 0.05)  # non-zero coefficients so that reg has a gradient
    img = torch.rand(2, 3, S, S, generator=gen(50)) * 0.5 + 0.25
    coeffs = enc(img)
    out = renderer(coeffs)
    assert out.mask.sum() > 0
    batch = {"image": img, "face_mask": torch.ones(2, 1, S, S), "region_weight": torch.ones(2, 1, S, S),
             "lm68": out.landmarks.detach() + 2.0}
    identity = build_identity_loss(shared_data / "identity" / "mobilefacenet-arcface" / "068.ckpt")
    terms = Losses(layout, identity=identity)(batch, out, coeffs, S)
    assert {"photo", "wing", "reg", "fre", "total"} <= set(terms)
    assert ("per" in terms) == (identity is not None)
    for name in [k for k in ("photo", "wing", "per", "reg", "fre") if k in terms]:
        (g,) = torch.autograd.grad(terms[name], enc.head.fc.bias, retain_graph=True)
        assert torch.isfinite(g).all() and g.abs().sum() > 0, name
