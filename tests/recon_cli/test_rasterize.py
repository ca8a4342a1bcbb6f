"""The pure-PyTorch rasteriser against a slow per-triangle float64 reference, gradients, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon_cli.render.camera import CameraConfig, euler_to_rotation, project
from recon_cli.render.meshgen import face_surface, icosphere
from recon_cli.render.rasterize import interpolate, rasterize, rasterize_hard, signed_area

NEAR = 0.01


def reference_raster(screen: np.ndarray, faces: np.ndarray, H: int, W: int, near: float = NEAR,
                     cull: bool = False, eps: float = 1e-10):
    """Slow float64 reference: loops over triangles, tests every pixel centre of the box.

    Returns tri (H, W) int (−1 bg), depth (H, W), bary (H, W, 3) perspective-correct, and
    ``ambiguous (H, W)`` bool: pixel centres within 1e-4 px of an edge of a covering triangle or
    whose two nearest covering depths are within 1e-6 relative (float32 may legitimately differ).
    """
    s = screen.astype(np.float64)
    tri = np.full((H, W), -1, np.int64)
    depth = np.full((H, W), np.inf)
    second = np.full((H, W), np.inf)
    bary = np.zeros((H, W, 3))
    amb = np.zeros((H, W), bool)
    for k, f in enumerate(faces):
        p = s[f]
        if (p[:, 2] <= near).any() or not np.isfinite(p).all():
            continue
        area = (p[1, 0] - p[0, 0]) * (p[2, 1] - p[0, 1]) - (p[2, 0] - p[0, 0]) * (p[1, 1] - p[0, 1])
        if abs(area) <= eps or (cull and area >= 0):
            continue
        c0 = max(int(np.ceil(p[:, 0].min() - 0.5)), 0)
        c1 = min(int(np.floor(p[:, 0].max() - 0.5)), W - 1)
        r0 = max(int(np.ceil(p[:, 1].min() - 0.5)), 0)
        r1 = min(int(np.floor(p[:, 1].max() - 0.5)), H - 1)
        if c1 < c0 or r1 < r0:
            continue
        jj, ii = np.meshgrid(np.arange(c0, c1 + 1), np.arange(r0, r1 + 1))
        px, py = jj + 0.5, ii + 0.5
        e = []
        for a, b in ((1, 2), (2, 0), (0, 1)):
            e.append((p[a, 0] - px) * (p[b, 1] - py) - (p[b, 0] - px) * (p[a, 1] - py))
        e = np.stack(e, -1) / area  # screen-space barycentrics
        inside = (e >= 0).all(-1)
        lengths = [np.hypot(*(p[b, :2] - p[a, :2])) for a, b in ((1, 2), (2, 0), (0, 1))]
        edge_dist = np.min(np.abs(e) * abs(area) / np.maximum(lengths, 1e-30), -1)
        q = e / p[:, 2]
        z = 1.0 / q.sum(-1)
        b = q * z[..., None]
        for (i, j), ins in np.ndenumerate(inside):
            if not ins:
                continue
            y, x = ii[i, j], jj[i, j]
            if edge_dist[i, j] < 1e-4:
                amb[y, x] = True
            if z[i, j] < depth[y, x]:
                second[y, x] = depth[y, x]
                depth[y, x], tri[y, x], bary[y, x] = z[i, j], k, b[i, j]
            elif z[i, j] < second[y, x]:
                second[y, x] = z[i, j]
    fin = np.isfinite(second)
    amb[fin] |= np.abs(second[fin] - depth[fin]) <= 1e-6 * np.abs(depth[fin])
    depth[tri < 0] = 0
    return tri, depth, bary, amb


def _screen(verts, angles=(0, 0, 0), trans=(0, 0, 0), cam=CameraConfig()):
    v = torch.as_tensor(verts, dtype=torch.float32)[None]
    R = euler_to_rotation(torch.tensor([angles], dtype=torch.float32))
    w = v @ R.transpose(-1, -2) + torch.tensor([trans], dtype=torch.float32)[:, None]
    uv, z = project(w, cam)
    return torch.cat([uv, z[..., None]], -1)


def _soup(n, seed, size=64):
    """Random overlapping triangles of all sizes, some partly off-screen / behind the camera."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-10, size + 10, (n, 1, 2))
    scale = np.exp(rng.uniform(np.log(0.3), np.log(30), (n, 1, 1)))
    uv = centres + rng.normal(0, 1, (n, 3, 2)) * scale
    z = rng.uniform(0.5, 2.0, (n, 1, 1)) + rng.normal(0, 0.05, (n, 3, 1))
    z[:5, 0, 0] = -0.2  # behind the camera
    z[5:8, 1, 0] = NEAR  # exactly at the near plane: dropped
    screen = np.concatenate([uv, z], -1).reshape(1, n * 3, 3).astype(np.float32)
    faces = np.arange(n * 3).reshape(n, 3)
    faces[8:12] = faces[8:12, [0, 0, 1]]  # degenerate (repeated vertex)
    return torch.from_numpy(screen), torch.from_numpy(faces)


def _compare(screen, faces, H, W, cull=False, min_agree=0.999):
    fr = rasterize(screen, faces, (H, W), near=NEAR, cull_backfaces=cull)
    attr = torch.rand(screen.shape[0], screen.shape[1], 4, generator=torch.Generator().manual_seed(3))
    img = interpolate(attr, fr, faces)
    for b in range(screen.shape[0]):
        tri, depth, bary, amb = reference_raster(screen[b].numpy(), faces.numpy(), H, W, cull=cull)
        got = fr.tri_idx[b].numpy()
        clear = ~amb
        assert (got[clear] == tri[clear]).all(), f"{(got[clear] != tri[clear]).sum()} unambiguous pixels differ"
        assert (got == tri).mean() >= min_agree
        assert (fr.mask[b].numpy() == (got >= 0)).all()
        same = (got == tri) & (tri >= 0)
        np.testing.assert_allclose(fr.bary[b].numpy()[same], bary[same], atol=1e-5)
        np.testing.assert_allclose(fr.depth[b].numpy()[same], depth[same], rtol=1e-6, atol=1e-6)
        ref_attr = (attr[b].numpy().astype(np.float64)[faces.numpy()[tri[same]]] * bary[same][..., None]).sum(1)
        np.testing.assert_allclose(img[b].numpy()[same], ref_attr, atol=1e-5)
        assert (img[b].numpy()[got < 0] == 0).all()
        assert (fr.bary[b].numpy()[got < 0] == 0).all() and (fr.depth[b].numpy()[got < 0] == 0).all()
    return fr


@pytest.mark.parametrize("cull", [False, True])
def test_triangle_soup_matches_reference(cull):
    screen, faces = _soup(300, seed=1)
    fr = _compare(screen, faces, 48, 64, cull=cull)  # non-square: H and W are not swapped
    assert fr.mask.any() and not fr.mask.all()
    hit = set(fr.tri_idx.unique().tolist())
    assert not hit & set(range(0, 12)), "behind-camera, near-plane and degenerate triangles must be dropped"


def test_dense_face_mesh_matches_reference():
    verts, faces = face_surface(6000)
    screen = torch.cat([_screen(verts, (0.2, -0.5, 0.1), (0.01, 0.0, 0.05)),
                        _screen(verts, (0.0, 0.3, 0.0), (0.0, 0.02, 0.0))])
    fr = _compare(screen, torch.from_numpy(faces), 224, 224)
    assert fr.mask.float().mean() > 0.3


def test_sphere_front_visible_and_culling_consistent():
    v, f = icosphere(3)
    screen = _screen(0.1 * v, (0.3, 0.4, 0.0), (0.0, 0.0, 0.0), CameraConfig().scaled(96))
    faces = torch.from_numpy(f)
    fr = _compare(screen, faces, 96, 96)
    # A closed convex surface: the z-buffer alone already shows only front faces.
    fr_cull = rasterize(screen, faces, 96, cull_backfaces=True)
    assert (fr.tri_idx == fr_cull.tri_idx).float().mean() > 0.999
    area = signed_area(*screen[0, f][..., :2].unbind(1))
    seen = fr.tri_idx[fr.mask].unique()
    assert (area[seen] < 0).all(), "visible triangles of a convex outward-CCW mesh are front-facing (area < 0)"


def test_big_triangles_chunked_and_borders():
    # Two triangles covering the whole image, far off-screen corners, plus a nearer small one.
    s = torch.tensor([[[-500.0, -500.0, 1.0], [900.0, -500.0, 1.0], [-500.0, 900.0, 1.0], [900.0, 900.0, 1.0],
                       [10.0, 10.0, 0.5], [30.0, 12.0, 0.5], [12.0, 40.0, 0.5]]])
    faces = torch.tensor([[0, 1, 2], [1, 3, 2], [4, 5, 6]])
    full = rasterize_hard(s, faces, 64)
    small_chunks = rasterize_hard(s, faces, 64, chunk=1000)
    assert (full == small_chunks).all()
    assert (full >= 0).all(), "every pixel, including the borders, must be covered"
    _compare(s, faces, 64, 64, min_agree=0.99)
    # Pixel centres exactly on the image border edge: a triangle whose edge passes x = 0.5.
    s2 = torch.tensor([[[0.5, 0.0, 1.0], [0.5, 8.0, 1.0], [-4.0, 4.0, 1.0]]])
    assert (rasterize_hard(s2, torch.tensor([[0, 1, 2]]), 8)[0, :, 0] >= 0).sum() >= 7


def test_empty_and_all_behind():
    s = torch.tensor([[[0.0, 0.0, -1.0], [10.0, 0.0, -1.0], [0.0, 10.0, -1.0]]])
    fr = rasterize(s, torch.tensor([[0, 1, 2]]), 16)
    assert not fr.mask.any() and (fr.tri_idx == -1).all()
    fr = rasterize(s, torch.zeros(0, 3, dtype=torch.int64), 16)
    assert not fr.mask.any()
    img = interpolate(torch.ones(1, 3, 2), fr)
    assert img.shape == (1, 16, 16, 2) and (img == 0).all()


def test_nan_and_inf_vertices_dropped():
    s = torch.tensor([[[2.0, 2.0, 1.0], [14.0, 2.0, 1.0], [2.0, 14.0, 1.0], [float("nan"), 5.0, 1.0], [float("inf"), 3.0, 1.0]]])
    fr = rasterize(s, torch.tensor([[0, 1, 2], [0, 3, 1], [4, 1, 2]]), 16)
    assert set(fr.tri_idx.unique().tolist()) == {-1, 0}


def test_gradcheck_float64():
    rng = np.random.default_rng(0)
    uv = rng.uniform(1, 11, (1, 6, 2))
    z = rng.uniform(0.8, 1.5, (1, 6, 1))
    screen = torch.tensor(np.concatenate([uv, z], -1), dtype=torch.float64, requires_grad=True)
    faces = torch.tensor([[0, 1, 2], [3, 4, 5], [0, 4, 2]])
    attr = torch.rand(1, 6, 2, dtype=torch.float64, requires_grad=True)
    assert rasterize(screen, faces, 12).mask.sum() > 10

    def fn(s, a):
        fr = rasterize(s, faces, 12)
        return interpolate(a, fr), fr.depth

    assert torch.autograd.gradcheck(fn, (screen, attr), eps=1e-7, atol=1e-6)
    assert torch.autograd.gradcheck(fn, (screen, attr), eps=1e-7, atol=1e-6, fast_mode=True)


def test_gradients_reach_xy_depth_and_attributes():
    verts, faces = face_surface(2000)
    screen = _screen(verts, cam=CameraConfig().scaled(64)).requires_grad_()
    attr = torch.rand(1, len(verts), 3, requires_grad=True)
    fr = rasterize(screen, torch.from_numpy(faces), 64)
    (interpolate(attr, fr).sum() + fr.depth.sum()).backward()
    g = screen.grad[0]
    assert g[:, 0].abs().sum() > 0 and g[:, 1].abs().sum() > 0 and g[:, 2].abs().sum() > 0
    assert attr.grad.abs().sum() > 0 and torch.isfinite(g).all()


def test_batch_equals_single():
    verts, faces = face_surface(3000)
    s = torch.cat([_screen(verts, (0, a, 0), cam=CameraConfig().scaled(80)) for a in (-0.6, 0.0, 0.5)])
    f = torch.from_numpy(faces)
    fb = rasterize(s, f, 80)
    for b in range(3):
        f1 = rasterize(s[b:b + 1], f, 80)
        assert (fb.tri_idx[b] == f1.tri_idx[0]).all()
        assert torch.equal(fb.bary[b], f1.bary[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    verts, faces = face_surface(20000)
    s = torch.cat([_screen(verts, (0, a, 0)) for a in (-0.4, 0.3)])
    f = torch.from_numpy(faces)
    cpu = rasterize(s, f, 224)
    gpu = rasterize(s.cuda(), f.cuda(), 224)
    assert (gpu.tri_idx.cpu() == cpu.tri_idx).float().mean() > 0.9999
    same = gpu.tri_idx.cpu() == cpu.tri_idx
    torch.testing.assert_close(gpu.bary.cpu()[same], cpu.bary[same], atol=1e-5, rtol=0)


def test_unknown_backend_rejected():
    with pytest.raises(ValueError, match="backend"):
        rasterize(torch.zeros(1, 3, 3), torch.tensor([[0, 1, 2]]), 8, backend="opengl")


@pytest.mark.skipif("pytorch3d" not in __import__("recon_cli.render.backends", fromlist=["x"]).available_backends(),
                    reason="pytorch3d is not installed (not on PyPI; optional backend)")
def test_pytorch3d_backend_matches_torch():
    verts, faces = face_surface(20000)
    s = torch.cat([_screen(verts, (0.1, a, 0)) for a in (-0.4, 0.3)])
    f = torch.from_numpy(faces)
    ref = rasterize(s, f, 224)
    p3d = rasterize(s, f, 224, backend="pytorch3d")
    assert (p3d.tri_idx == ref.tri_idx).float().mean() > 0.999
