"""Yaw symmetry: the model's mirror operators and the removal of yaw-dependent mean asymmetry."""

from __future__ import annotations

import numpy as np
import pytest

from recon_cli.coeffs import CoeffLayout
from recon_cli.errors import InputError
from recon_cli.morphable import load_default_model
from recon_cli.morphable.mirror import mirror_operators
from recon_cli.pipeline import symmetry
from recon_cli.pipeline.symmetry import YawSymmetry, antisymmetric, odd_hat_basis


@pytest.fixture(scope="module")
def model():
    return load_default_model()


@pytest.fixture(scope="module")
def operators(model):
    return mirror_operators(model)


def test_mirror_operators_swap_left_and_right(model, operators):
    """ICT-FaceKit's expression mirror is the _L/_R (Left/Right) swap; mirroring twice is the identity;
    the mirrored coefficients give the mirrored mesh."""
    P_id, P_exp = operators
    names = model.exp_names
    for name in ("browDown_L", "mouthSmile_R", "jawLeft", "jawOpen"):
        k = names.index(name)
        j = int(np.argmax(np.abs(P_exp[:, k])))
        want = name.replace("_L", "_R") if name.endswith("_L") else name.replace("_R", "_L") if name.endswith("_R") \
            else {"jawLeft": "jawRight"}.get(name, name)
        assert names[j] == want and P_exp[j, k] == pytest.approx(1.0, abs=0.02)
    assert np.abs(P_exp @ P_exp - np.eye(len(P_exp))).max() < 0.05
    assert np.abs(P_id @ P_id - np.eye(len(P_id))).max() < 0.1
    rng = np.random.default_rng(0)
    idc, exc = rng.normal(size=model.n_id) * 0.5, rng.uniform(0, 0.6, model.n_exp)
    mesh = model.shape(idc, exc)[0]
    from recon_cli.morphable.mirror import vertex_mirror_map

    m = vertex_mirror_map(model)
    mirrored = mesh[m] * np.array([-1.0, 1.0, 1.0])
    got = model.shape(P_id @ idc, P_exp @ exc)[0]
    assert np.sqrt(((got - mirrored) ** 2).sum(-1).mean()) < 1e-3  # m; faces span ~0.15 m


def _layout(model):
    return CoeffLayout(model.n_id, model.n_exp, 4)


def test_fit_removes_a_planted_yaw_dependent_asymmetry(model, operators):
    """Faces with their own asymmetry (independent of yaw) plus a planted odd function of yaw: the fit
    recovers the planted table, and the correction removes it while each face keeps its own
    asymmetry and every symmetric, texture, pose, light and translation coefficient."""
    P_id, P_exp = operators
    layout = _layout(model)
    rng = np.random.default_rng(1)
    n = 6000
    c = rng.normal(size=(n, layout.total)) * 0.3
    parts = layout.split(c)
    yaw = rng.uniform(-100, 100, n)
    parts["angles"][:, 1] = np.radians(yaw)
    knots = np.asarray(symmetry.KNOTS_DEG)
    planted = np.zeros((len(knots) - 1, layout.n_id + layout.n_exp))
    k_brow = layout.n_id + model.exp_names.index("browDown_L")
    k_brow_r = layout.n_id + model.exp_names.index("browDown_R")
    planted[:, k_brow] = np.linspace(0.2, 1.2, len(knots) - 1)  # browDown_L − browDown_R grows with yaw
    planted[:, k_brow_r] = -planted[:, k_brow]
    a = odd_hat_basis(yaw, knots) @ planted
    parts["id"][:] += a[:, :layout.n_id]
    parts["exp"][:] += a[:, layout.n_id:]
    own = antisymmetric(c, layout, P_id, P_exp) - a  # each face's own asymmetry (random, no yaw trend)
    fitted = symmetry.fit(c, layout, P_id, P_exp)
    assert fitted.faces == n
    assert np.abs(fitted.table[:, [k_brow, k_brow_r]] - planted[:, [k_brow, k_brow_r]]).max() < 0.05
    out = fitted.apply(c.astype(np.float32), layout)
    assert out.dtype == np.float32
    left = antisymmetric(out, layout, P_id, P_exp)
    cols = [k_brow, k_brow_r]
    assert np.abs(left - own)[:, cols].mean() < 0.1 * np.abs(a[:, cols]).mean()
    for key in ("tex", "angles", "light", "trans"):
        np.testing.assert_array_equal(layout.split(out)[key], layout.split(c.astype(np.float32))[key])
    sym = lambda x: np.concatenate([(layout.split(x)["id"] + layout.split(x)["id"] @ P_id.T) / 2,  # noqa: E731
                                    (layout.split(x)["exp"] + layout.split(x)["exp"] @ P_exp.T) / 2], 1)
    assert np.abs(sym(out.astype(np.float64)) - sym(c)).max() < 0.02 * np.abs(sym(c)).max()


def test_frontal_faces_are_left_alone_and_the_table_round_trips(model, operators):
    layout = _layout(model)
    rng = np.random.default_rng(2)
    table = rng.normal(size=(len(symmetry.KNOTS_DEG) - 1, layout.n_id + layout.n_exp))
    sym = YawSymmetry(np.asarray(symmetry.KNOTS_DEG), table, faces=10)
    c = rng.normal(size=(3, layout.total)).astype(np.float32)
    layout.split(c)["angles"][:, 1] = 0.0
    np.testing.assert_array_equal(sym.apply(c, layout), c)  # no yaw, no correction: a wink stays
    layout.split(c)["angles"][:, 1] = np.radians([30.0, -30.0, 120.0])
    out = sym.apply(c, layout)
    np.testing.assert_allclose(c[0, : layout.n_id] - out[0, : layout.n_id], table[1, : layout.n_id], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c[1, : layout.n_id] - out[1, : layout.n_id], -table[1, : layout.n_id], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c[2, : layout.n_id] - out[2, : layout.n_id], table[-1, : layout.n_id], rtol=1e-5, atol=1e-5)
    back = YawSymmetry.from_meta(sym.to_meta(), layout)
    np.testing.assert_array_equal(back.table, table)
    assert back.faces == 10
    bad = sym.to_meta()
    bad["table"] = table[:, :5].tolist()
    with pytest.raises(InputError, match="expected increasing knots"):
        YawSymmetry.from_meta(bad, layout, "w.pt")
    with pytest.raises(InputError, match="unreadable"):
        YawSymmetry.from_meta({"table": []}, layout, "w.pt")


def test_fit_needs_faces_at_every_yaw(model, operators):
    layout = _layout(model)
    c = np.zeros((50, layout.total))
    layout.split(c)["angles"][:, 1] = np.radians(np.linspace(-40, 40, 50))
    with pytest.raises(InputError, match="45–60°"):
        symmetry.fit(c, layout, *operators)


def test_reconstructor_applies_the_weights_table(model):
    """``encode`` removes the recorded table with ``yaw_symmetry="on"`` (default), not with
    ``"off"``, and ignores weights without one; other values are refused."""
    from recon_cli.pipeline.encoder_source import untrained_torch
    from recon_cli.pipeline.reconstruct import Reconstructor

    backend = untrained_torch("mobilenet_v3_small", model, threads=1)
    layout = CoeffLayout(**backend.meta["layout"])
    table = np.full((len(symmetry.KNOTS_DEG) - 1, layout.n_id + layout.n_exp), 0.5)

    class Turned:  # the real backend, its heads turned 45° and a table recorded
        name, meta = backend.name, {**backend.meta, "yaw_symmetry": YawSymmetry(np.asarray(symmetry.KNOTS_DEG), table).to_meta()}

        def __call__(self, x):
            out = backend(x)
            layout.split(out)["angles"][:, 1] = np.radians(45.0)
            return out

    crops = np.random.default_rng(0).integers(0, 255, (2, 224, 224, 3), dtype=np.uint8)
    raw = Reconstructor(Turned(), model, yaw_symmetry="off").encode(crops)
    on = Reconstructor(Turned(), model).encode(crops)
    np.testing.assert_allclose(raw[:, : layout.n_id + layout.n_exp] - on[:, : layout.n_id + layout.n_exp], 0.5, atol=1e-6)
    np.testing.assert_array_equal(raw[:, layout.n_id + layout.n_exp:], on[:, layout.n_id + layout.n_exp:])
    assert Reconstructor(backend, model).symmetry is None
    with pytest.raises(InputError, match="yaw-symmetry"):
        Reconstructor(Turned(), model, yaw_symmetry="maybe")


def test_shipped_encoder_profiles_lose_their_lopsided_mouth(shared_data, model):
    """The shipped weights record the table (fitted on their 15,081 training faces). On AFLW2000-3D
    profiles the raw encoder puts the two mouth corners centimetres apart in depth (model space); with
    the correction the gap shrinks, and a frontal face's points move far less."""
    pytest.importorskip("torch")
    import cv2

    from recon_cli.eval.aflw2000_data import Aflw2000
    from recon_cli.eval.crops import roi_box_from_landmarks
    from recon_cli.eval.predictors import ReconPredictor, default_weights

    weights = default_weights()
    if weights is None:
        pytest.skip("no shipped weights in recon_cli/weights")
    samples = list(Aflw2000(shared_data / "aflw2000-3d").samples())
    profiles = [s for s in samples if 65 < abs(s.yaw_deg) < 90][:6]
    frontal = next(s for s in samples if abs(s.yaw_deg) < 10)
    p = ReconPredictor(weights, threads=2)
    try:
        rec = p._rec
        assert rec.symmetry is not None and rec.symmetry.faces > 10000
        from recon_cli.pipeline.reconstruct import Reconstructor

        raw = Reconstructor(rec.backend, model, yaw_symmetry="off")
        gaps, moved = {"on": [], "off": []}, None
        for s in profiles + [frontal]:
            rgb = np.ascontiguousarray(cv2.imread(str(s.image_path))[..., ::-1])
            lm5 = p._roi.face(rgb, roi_box_from_landmarks(s.gt68)).lm5
            crop = rec.align(rgb, [lm5])[0].crop[None]
            for key, r in (("on", rec), ("off", raw)):
                lm, _, _ = r.landmarks_model(r.encode(crop))
                if s is frontal:  # how far the 68 points move (model space, m)
                    moved = lm[0] if moved is None else np.sqrt(((moved - lm[0]) ** 2).sum(-1).mean())
                else:
                    gaps[key].append(abs(lm[0, 48, 2] - lm[0, 54, 2]))
    finally:
        p.close()
    off, on = np.mean(gaps["off"]), np.mean(gaps["on"])
    assert off > 0.006 and on < 0.5 * off, (off, on)  # metres
    # v1.9: 11.8 → 1.3 mm; the frontal face's points move 1.1 mm rms (its predicted yaw is not 0)
    assert moved < 0.002 and moved < 0.2 * (off - on)


def test_a_broken_table_names_the_weights_file(tmp_path, model):
    """Weights whose recorded table does not fit their layout: an InputError naming the file and the
    fix, not a shape error deep in NumPy; ``off`` still runs them."""
    from recon_cli.backends import load_backend
    from recon_cli.encoders.registry import build_encoder, save_checkpoint
    from recon_cli.pipeline.reconstruct import Reconstructor

    layout = CoeffLayout(model.n_id, model.n_exp, model.n_tex)
    bad = YawSymmetry(np.asarray(symmetry.KNOTS_DEG), np.zeros((3, layout.n_id + layout.n_exp))).to_meta()
    path = save_checkpoint(tmp_path / "w.pt", build_encoder("mobilenet_v3_small", layout, 64), arch="mobilenet_v3_small",
                           layout=layout, size=64, model_name=model.name, model_hash=model.content_hash(), yaw_symmetry=bad)
    backend = load_backend(path, threads=1)
    with pytest.raises(InputError, match=f"{path}: yaw_symmetry metadata") as e:
        Reconstructor(backend, model)
    assert "--yaw-symmetry off" in e.value.hint
    assert Reconstructor(backend, model, yaw_symmetry="off").symmetry is None
