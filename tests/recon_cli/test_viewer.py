"""Open3D viewer off-screen (Mesa EGL) and the NumPy overlay rasteriser."""

from __future__ import annotations

import numpy as np
import pytest

from recon_cli.morphable import load_default_model
from recon_cli.pipeline.overlay import OverlayConfig, _rasterise, draw_landmarks, draw_mesh
from recon_cli.render.camera import CameraConfig, project


@pytest.fixture(scope="module")
def model():
    return load_default_model()


def _face_cam(model, dx=0.0):
    """The mean face in the viewer's camera frame (x right, y up, z to the viewer, face at z ≈ −1 m)."""
    return model.mean_shape.astype(np.float64) + np.array([dx, 0.0, -1.0])


def test_open3d_viewer_renders_and_updates_the_mesh_offscreen(model):
    o3d = pytest.importorskip("open3d")
    from recon_cli.viewer.open3d_viewer import MeshViewer

    try:
        viewer = MeshViewer(model.triangles, width=320, height=240, visible=False)
    except Exception as e:  # pragma: no cover - machines without EGL
        pytest.skip(f"Open3D off-screen rendering unavailable: {e}")
    with viewer:
        empty = viewer.capture()
        bg = np.median(empty.reshape(-1, 3), 0)
        assert np.abs(empty - bg).max() < 1e-3  # nothing drawn yet
        assert viewer.update([_face_cam(model)], [np.full((model.n_verts, 3), 0.8)])
        img = viewer.capture()
        face = np.abs(img - bg).max(-1) > 0.05
        assert 0.05 < face.mean() < 0.9  # the mesh fills a good part of the fitted view
        ys, xs = np.nonzero(face)
        centre = np.array([xs.mean() / img.shape[1], ys.mean() / img.shape[0]])
        assert np.all(np.abs(centre - 0.5) < 0.15)
        # in-place update: moving the vertices moves the face in the image (the view stays fixed)
        viewer.update([_face_cam(model, dx=0.05)])
        moved = np.abs(viewer.capture() - bg).max(-1) > 0.05
        assert np.nonzero(moved)[1].mean() > xs.mean() + 5
        # a face that disappears is hidden
        viewer.update([])
        assert np.abs(viewer.capture() - bg).max() < 1e-3


def test_overlay_draws_the_face_inside_its_outline(model):
    cam = CameraConfig(size=480, focal=2000.0, cx=320.0, cy=240.0, distance=1.0)
    uv, zc = project(model.mean_shape[None].astype(np.float64), cam)
    verts_img = np.concatenate([uv[0], (zc.mean() - zc[0])[:, None] * cam.focal / zc.mean()], 1)
    frame = np.zeros((480, 640, 3), np.uint8)
    draw_mesh(frame, verts_img, model.triangles, vertex_faces=model.vertex_faces,
              config=OverlayConfig(alpha=1.0))
    drawn = frame.max(-1) > 0
    lo, hi = uv[0].min(0), uv[0].max(0)
    ys, xs = np.nonzero(drawn)
    assert xs.min() >= lo[0] - 1 and xs.max() <= hi[0] + 1 and ys.min() >= lo[1] - 1 and ys.max() <= hi[1] + 1
    # the face interior is covered without holes (between the inner eye corners, bridge to nose
    # base; the ICT mesh has real openings only at the eyes and the mouth)
    lm = uv[0, model.landmarks68]
    box = drawn[int(lm[27, 1]):int(lm[33, 1]), int(lm[39, 0]):int(lm[42, 0])]
    assert box.size > 500 and box.all()
    # Lambert shading: the frontal nose bridge is brighter than the cheek edge seen at a grazing angle
    nose = uv[0, model.landmarks68[28]].astype(int)
    jaw = uv[0, model.landmarks68[2]].astype(int) + [3, 0]
    assert frame[nose[1], nose[0]].mean() > frame[jaw[1], jaw[0]].mean()
    # a large face is rendered reduced (max_size) and resized: same coverage
    big = np.zeros_like(frame)
    draw_mesh(big, verts_img, model.triangles, config=OverlayConfig(alpha=1.0, max_size=64))
    assert abs((big.max(-1) > 0).mean() - drawn.mean()) < 0.1 * drawn.mean()
    draw_landmarks(frame, uv[0, model.landmarks68])


def test_rasteriser_keeps_the_nearest_triangle_and_culls_back_faces():
    # two overlapping triangles; the nearer one wins
    p = np.array([[2, 2], [30, 2], [2, 30], [4, 4], [31, 4], [4, 31]], np.float32)
    z = np.array([0, 0, 0, 5, 5, 5], np.float32)
    tri = np.array([[0, 1, 2], [3, 4, 5]])
    shade = np.array([0.2, 0.2, 0.2, 0.9, 0.9, 0.9], np.float32)
    val, mask = _rasterise(p, z, tri, shade, 40, 40, cull=False)
    assert mask[3, 3] and val[3, 3] == pytest.approx(0.2)  # only the far triangle covers (3, 3)
    assert val[10, 10] == pytest.approx(0.9)  # overlap: the near one
    z2 = np.array([5, 5, 5, 0, 0, 0], np.float32)
    val2, _ = _rasterise(p, z2, tri, shade, 40, 40, cull=False)
    assert val2[10, 10] == pytest.approx(0.2)
    # coverage equals a brute-force pixel-centre inside test
    ys, xs = np.mgrid[0:40, 0:40] + 0.5
    a, b, c = p[0], p[1], p[2]

    def edge(p0, p1):
        return (p1[0] - p0[0]) * (ys - p0[1]) - (p1[1] - p0[1]) * (xs - p0[0])

    e = [edge(a, b), edge(b, c), edge(c, a)]
    inside = ((e[0] >= 0) & (e[1] >= 0) & (e[2] >= 0)) | ((e[0] <= 0) & (e[1] <= 0) & (e[2] <= 0))
    only = _rasterise(p, z, tri[:1], shade, 40, 40, cull=False)[1]
    assert np.array_equal(only, inside)
    # these triangles are counter-clockwise on screen (y down): back faces, culled by default
    assert not _rasterise(p, z, tri, shade, 40, 40)[1].any()
    on_edge = (e[0] == 0) | (e[1] == 0) | (e[2] == 0)  # float ties may go either way reversed
    rev = _rasterise(p, z, tri[:1, ::-1], shade, 40, 40)[1]
    assert np.array_equal(rev[~on_edge], inside[~on_edge])


def test_vertex_normals_of_a_sphere_point_outwards():
    o3d = pytest.importorskip("open3d")
    from recon_cli.pipeline.overlay import vertex_normals

    s = o3d.geometry.TriangleMesh.create_sphere(1.0, resolution=20)
    v, t = np.asarray(s.vertices), np.asarray(s.triangles)  # counter-clockwise from outside
    n = vertex_normals(v, t)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(n * v, 1)) > 0.98  # radial, outward


def test_overlay_clips_faces_leaving_the_frame(model):
    cam = CameraConfig(size=480, focal=3500.0, cx=20.0, cy=240.0, distance=1.0)  # huge, centred on the left edge
    uv, zc = project(model.mean_shape[None].astype(np.float64), cam)
    verts_img = np.concatenate([uv[0], (zc.mean() - zc[0])[:, None] * cam.focal / zc.mean()], 1)
    frame = np.zeros((480, 640, 3), np.uint8)
    draw_mesh(frame, verts_img, model.triangles, config=OverlayConfig(alpha=1.0))
    drawn = frame.max(-1) > 0
    assert drawn[:, :10].mean() > 0.5 and not drawn[:, 400:].any()
    off = np.zeros_like(frame)
    draw_mesh(off, verts_img + [2000.0, 0.0, 0.0], model.triangles)  # entirely outside: nothing, no error
    assert not off.any()
