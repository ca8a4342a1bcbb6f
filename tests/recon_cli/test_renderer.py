"""The differentiable renderer: outputs, composite, gradients, a fit by gradient descent, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from recon_cli.coeffs import CoeffLayout
from recon_cli.morphable import MorphableModel
from recon_cli.paths import DEFAULT_MODEL_PATH
from recon_cli.render.camera import CameraConfig, project, transform
from recon_cli.render.meshgen import face_surface
from recon_cli.render.renderer import RenderConfig, Renderer, composite, render
from tests.conftest import make_random_model


def _pattern_model(n_faces=8000):
    """A dense face-like surface with a smooth albedo pattern; tex modes 0..2 are constant
    R, G, B offsets (so tex coefficients = a colour offset)."""
    verts, faces = face_surface(n_faces)
    V = len(verts)
    x, y = verts[:, 0] / 0.01, verts[:, 1] / 0.01  # cm
    albedo = np.stack([0.5 + 0.2 * np.sin(x), 0.5 + 0.2 * np.cos(y), 0.4 + 0.15 * np.sin(0.7 * (x + y))], 1)
    tex = np.zeros((3, V, 3))
    for c in range(3):
        tex[c, :, c] = 0.1
    rng = np.random.default_rng(0)
    return MorphableModel(name="pattern", mean_shape=verts, id_basis=rng.normal(0, 1e-4, (2, V, 3)),
                          exp_basis=rng.normal(0, 1e-4, (2, V, 3)), mean_albedo=albedo, tex_basis=tex,
                          triangles=faces, landmarks68=np.arange(68) * (V // 68), licence="test", source="test")


def test_outputs_shapes_ranges_and_landmarks():
    m = make_random_model(900)
    cfg = RenderConfig(camera=CameraConfig().scaled(96))
    layout = CoeffLayout.for_model(m)
    c = torch.zeros(2, layout.total)
    c[1, layout.slices["angles"]] = torch.tensor([0.1, 0.4, -0.05])
    c[1, layout.slices["trans"]] = torch.tensor([0.01, -0.005, 0.02])
    out = Renderer(m, cfg)(c)
    assert out.image.shape == (2, 3, 96, 96) and out.mask.shape == (2, 1, 96, 96) and out.landmarks.shape == (2, 68, 2)
    assert out.image.min() >= 0 and out.image.max() <= 1
    assert 0.2 < out.mask.mean() < 0.9
    assert (out.image * (1 - out.mask) == 0).all(), "background pixels are the background value"
    # Landmarks = projected posed landmark vertices (independent NumPy path).
    s = layout.split(c.numpy())
    shape = m.shape(s["id"], s["exp"])
    uv, _ = project(transform(shape, s["angles"], s["trans"]), cfg.camera)
    np.testing.assert_allclose(out.landmarks.numpy(), uv[:, m.landmarks68], atol=1e-4)
    # Zero coefficients: ambient light → every covered pixel = albedo 0.6 · 0.8 · √π/2.
    face = out.image[0][:, out.mask[0, 0] > 0]
    np.testing.assert_allclose(face.numpy(), 0.6 * 0.8 * math.sqrt(math.pi) / 2, atol=1e-5)


def test_rgb_light_and_composite():
    m = make_random_model(400)
    cfg = RenderConfig(camera=CameraConfig().scaled(64), n_light=27, background=0.25)
    layout = CoeffLayout.for_model(m, 27)
    c = torch.zeros(1, layout.total)
    c[0, layout.slices["light"].start] = 0.3  # brighter red only
    out = render(c, m, cfg)
    inside = out.mask[0, 0] > 0
    r, g, b = (out.image[0, k][inside].mean() for k in range(3))
    assert r > g and torch.isclose(g, b, atol=1e-3)
    assert torch.allclose(out.image[0][:, ~inside], torch.tensor(0.25))
    photo = torch.rand(1, 3, 64, 64)
    comp = composite(out.image, out.mask, photo)
    assert torch.equal(comp[0][:, inside], out.image[0][:, inside])
    assert torch.equal(comp[0][:, ~inside], photo[0][:, ~inside])


def test_gradients_reach_every_coefficient_group():
    m = _pattern_model(3000)
    cfg = RenderConfig(camera=CameraConfig().scaled(64), clamp=False)
    layout = CoeffLayout.for_model(m)
    c = torch.zeros(1, layout.total)
    c[0, layout.slices["angles"]] = torch.tensor([0.05, 0.2, 0.02])
    c[0, layout.slices["light"]] = 0.05
    c.requires_grad_()
    target = torch.rand(1, 3, 64, 64)
    ((render(c, m, cfg).image - target) ** 2).mean().backward()
    for name, sl in layout.slices.items():
        assert c.grad[0, sl].abs().max() > 0, f"no gradient reaches {name}"
    assert torch.isfinite(c.grad).all()


def test_gradcheck_coefficients_float64():
    m = make_random_model(100)
    cfg = RenderConfig(camera=CameraConfig().scaled(24), clamp=False)
    layout = CoeffLayout.for_model(m)
    c = torch.zeros(1, layout.total, dtype=torch.float64)
    c[0, layout.slices["angles"]] = torch.tensor([0.1, 0.2, 0.05], dtype=torch.float64)
    c[0, layout.slices["light"]] = 0.1
    c.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: render(x, m, cfg).image, (c,), eps=1e-7, atol=1e-5, fast_mode=True)


def test_fit_recovers_translation_and_colour_offset():
    """Gradient descent from zero recovers a known translation and colour offset (tex modes =
    constant RGB offsets) from a rendered target."""
    m = _pattern_model(6000)
    cfg = RenderConfig(camera=CameraConfig().scaled(96), clamp=False)
    layout = CoeffLayout.for_model(m)
    sl_t, sl_c = layout.slices["trans"], layout.slices["tex"]
    true = torch.zeros(1, layout.total)
    true[0, sl_t] = torch.tensor([0.004, -0.003, 0.01])  # ~1.7 px, ~−1.3 px, 1 cm nearer
    true[0, sl_c] = torch.tensor([0.8, -0.5, 0.3])  # colour offset (0.08, −0.05, 0.03)
    with torch.no_grad():
        target = render(true, m, cfg).image
    t = torch.zeros(1, 3, requires_grad=True)
    col = torch.zeros(1, 3, requires_grad=True)
    opt = torch.optim.Adam([{"params": [t], "lr": 5e-4}, {"params": [col], "lr": 5e-2}])
    for _ in range(100):
        c = torch.zeros(1, layout.total)
        c[:, sl_t] = t
        c[:, sl_c] = col
        loss = ((render(c, m, cfg).image - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    np.testing.assert_allclose(t.detach().numpy()[0], true[0, sl_t].numpy(), atol=4e-4)
    np.testing.assert_allclose(col.detach().numpy()[0], true[0, sl_c].numpy(), atol=0.05)


@pytest.mark.skipif(not DEFAULT_MODEL_PATH.is_file(), reason="the default ICT-FaceKit model asset is not built yet")
def test_default_model_renders_a_centred_face():
    from recon_cli.morphable import load_default_model

    m = load_default_model()
    r = Renderer(m)
    out = r(r.zero_coeffs(1))
    mask = out.mask[0, 0]
    assert 0.15 < mask.mean() < 0.8
    ii, jj = torch.nonzero(mask, as_tuple=True)
    assert abs(jj.float().mean() - 112) < 12 and abs(ii.float().mean() - 112) < 25
    assert (out.landmarks[0] > 0).all() and (out.landmarks[0] < 224).all()
    # Frontal face, zero pose: landmark 30 (nose tip) is near the image centre column.
    assert abs(out.landmarks[0, 30, 0] - 112) < 5


def test_cli_render_and_json(tmp_path):
    from recon_cli.cli.app import main

    m = make_random_model(400)
    mp = m.save(tmp_path / "m.npz")
    layout = CoeffLayout.for_model(m)
    coeffs = {"angles": [0.0, 0.3, 0.0], "light": [0.1] + [0.0] * 8}
    (tmp_path / "c.json").write_text(json.dumps(coeffs))
    out, js = tmp_path / "face.png", tmp_path / "r.json"
    with pytest.raises(SystemExit) as e:
        main(["model", "render", "--model", str(mp), "--coeffs", str(tmp_path / "c.json"), "--out", str(out),
              "--size", "64", "--json", str(js)])
    assert e.value.code == 0 and out.is_file()
    import cv2

    img = cv2.imread(str(out))
    assert img.shape == (64, 64, 3) and img.max() > 50
    data = json.loads(js.read_text())
    assert len(data["landmarks68"][0]) == 68 and len(data["coeffs"][0]) == layout.total
    # Wrong length → a clear InputError (exit code 2), no output written.
    np.save(tmp_path / "bad.npy", np.zeros(7, np.float32))
    with pytest.raises(SystemExit) as e:
        main(["model", "render", "--model", str(mp), "--coeffs", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "x.png")])
    assert e.value.code == 2 and not (tmp_path / "x.png").exists()


def test_cli_snapshot_open3d(tmp_path):
    from recon_cli.cli.app import main

    mp = make_random_model(400).save(tmp_path / "m.npz")
    snap = tmp_path / "mesh.png"
    with pytest.raises(SystemExit) as e:
        main(["model", "render", "--model", str(mp), "--random", "--seed", "1", "--out", str(tmp_path / "f.png"),
              "--snapshot", str(snap), "--size", "64"])
    if e.value.code != 0 and not snap.exists():
        pytest.skip("Open3D off-screen (EGL) rendering is not available on this machine")
    import cv2

    img = cv2.imread(str(snap))
    assert img.shape == (512, 512, 3) and img.std() > 5, "the snapshot shows the mesh on a white background"
