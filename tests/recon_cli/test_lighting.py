"""SH lighting (Deep3DFaceRecon constants and layout) and vertex normals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recon_cli.render.lighting import INIT_LIT, irradiance, sh_basis, sh_coefficients, shade
from recon_cli.render.meshgen import face_surface, icosphere
from recon_cli.render.normals import face_normals, vertex_normals


def _unit(n, seed=0):
    v = np.random.default_rng(seed).normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _deep3d_basis(n):
    """Deep3DFaceRecon's SH basis written out with its numeric constants, one normal at a time."""
    out = []
    for x, y, z in n:
        a0, a1, a2 = math.pi, 2 * math.pi / math.sqrt(3), 2 * math.pi / math.sqrt(8)
        c0, c1, c2 = 1 / math.sqrt(4 * math.pi), math.sqrt(3) / math.sqrt(4 * math.pi), 3 * math.sqrt(5) / math.sqrt(12 * math.pi)
        out.append([a0 * c0, -a1 * c1 * y, a1 * c1 * z, -a1 * c1 * x, a2 * c2 * x * y, -a2 * c2 * y * z,
                    0.5 * a2 * c2 / math.sqrt(3) * (3 * z * z - 1), -a2 * c2 * x * z, 0.5 * a2 * c2 * (x * x - y * y)])
    return np.array(out)


def test_basis_matches_deep3d_numpy_and_torch():
    n = _unit(50)
    ref = _deep3d_basis(n)
    np.testing.assert_allclose(sh_basis(n), ref, rtol=1e-12)
    np.testing.assert_allclose(sh_basis(torch.tensor(n)).numpy(), ref, rtol=1e-12)
    # Band-0 value: a0·c0 = √π / 2.
    assert sh_basis(n)[0, 0] == pytest.approx(math.sqrt(math.pi) / 2)


def test_zero_coefficients_give_ambient_light():
    n = torch.tensor(_unit(100, 1))[None]
    E = irradiance(n, torch.zeros(1, 9, dtype=torch.float64))
    np.testing.assert_allclose(E.numpy(), 0.8 * math.sqrt(math.pi) / 2, rtol=1e-12)
    E27 = irradiance(n.numpy(), np.zeros((1, 27)))
    np.testing.assert_allclose(E27, 0.8 * math.sqrt(math.pi) / 2, rtol=1e-12)
    albedo = torch.rand(1, 100, 3, dtype=torch.float64)
    np.testing.assert_allclose(shade(albedo, n, torch.zeros(1, 9, dtype=torch.float64)).numpy(),
                               albedo.numpy() * 0.8 * math.sqrt(math.pi) / 2, rtol=1e-12)
    # init_lit is configurable: zero init and zero coefficients → black.
    assert np.abs(irradiance(n.numpy(), np.zeros((1, 9)), init_lit=[0.0] * 9)).max() == 0


def test_white_and_rgb_layouts():
    n = _unit(20, 2)[None]
    g9 = np.random.default_rng(3).normal(size=(1, 9))
    E = irradiance(n, g9)
    ref = _deep3d_basis(n[0]) @ (g9[0] + np.array(INIT_LIT))
    for ch in range(3):
        np.testing.assert_allclose(E[0, :, ch], ref, rtol=1e-10)
    # RGB: channel-major [r0..r8, g0..g8, b0..b8]; the same 9 in each channel equals white light.
    np.testing.assert_allclose(irradiance(n, np.tile(g9, 3)), E, rtol=1e-12)
    g27 = np.zeros((1, 27))
    g27[0, 9 + 2] = 1.0  # green, Y2 (z-dependent)
    E27 = irradiance(n, g27)
    amb = 0.8 * math.sqrt(math.pi) / 2
    np.testing.assert_allclose(E27[0, :, 0], amb, rtol=1e-12)
    np.testing.assert_allclose(E27[0, :, 2], amb, rtol=1e-12)
    np.testing.assert_allclose(E27[0, :, 1], amb + _deep3d_basis(n[0])[:, 2], rtol=1e-12)
    gt = sh_coefficients(torch.tensor(g27))
    assert gt.shape == (1, 9, 3) and gt[0, 2, 1] == 1.0 and gt[0, 0, 0] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="9 .* or 27"):
        sh_coefficients(np.zeros((1, 10)))


def test_light_from_above_brightens_upward_normals():
    n = np.array([[[0, 1.0, 0], [0, -1.0, 0], [0, 0, 1.0]]])
    g = np.zeros((1, 9))
    g[0, 1] = -0.3  # Y1 = −a1 c1 y: a negative coefficient lights +y
    E = irradiance(n, g)[0, :, 0]
    assert E[0] > E[2] > E[1]


def test_shading_gradients():
    n = torch.nn.functional.normalize(torch.randn(1, 30, 3, dtype=torch.float64), dim=-1).requires_grad_()
    light = torch.randn(1, 27, dtype=torch.float64, requires_grad=True)
    albedo = torch.rand(1, 30, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(shade, (albedo, n, light))


def test_sphere_vertex_normals_are_radial():
    v, f = icosphere(3)
    centre, r = np.array([0.1, -0.2, 0.3]), 0.09
    verts = centre + r * v
    for vf in (None, "model"):
        vfaces = None
        if vf:
            from recon_cli.morphable.model import _vertex_faces

            vfaces = _vertex_faces(f, len(v))
        n = vertex_normals(torch.tensor(verts)[None], torch.tensor(f), vfaces)[0].numpy()
        cos = (n * v).sum(1)
        assert cos.min() > np.cos(np.radians(1.0)) and np.median(cos) > np.cos(np.radians(0.4)), "area-weighted normals of a geodesic sphere are radial"
        np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1, atol=1e-12)
    n_np = vertex_normals(verts[None], f)[0]
    np.testing.assert_allclose(n_np, n, atol=1e-12)
    fn = face_normals(verts[None], f)[0]
    assert ((fn * (verts[f].mean(1) - centre)).sum(1) > 0).all(), "outward CCW faces → outward normals"


def test_normals_area_weighted_and_face_towards_camera():
    # Two triangles sharing vertex 0: a big one in the xy-plane, a small one tilted; the shared
    # vertex's normal is the area-weighted mean.
    verts = torch.tensor([[[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, -0.1, 0], [0, 0, 0.1]]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [0, 3, 4]])
    n = vertex_normals(verts, faces)[0]
    big, small = np.array([0, 0, 1.0]) * 1.0, np.array([-1.0, 0, 0]) * 0.01  # 2·area · unit normal
    ref = (big + small) / np.linalg.norm(big + small)
    np.testing.assert_allclose(n[0].numpy(), ref, atol=1e-12)
    fv, ff = face_surface(4000)
    nf = vertex_normals(torch.tensor(fv)[None], torch.tensor(ff))[0]
    assert (nf[:, 2] > 0).all(), "a frontal face mesh has normals towards the camera (+z)"
