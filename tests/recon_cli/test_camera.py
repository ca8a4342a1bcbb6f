"""Camera: Euler convention, transform, projection, crop ↔ original-image mapping."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from recon_cli.render.camera import (CameraConfig, crop_to_image, euler_to_rotation, image_to_crop,
                                     invert_similarity, project, transform)


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def test_euler_is_rz_ry_rx_numpy_and_torch():
    ang = np.random.default_rng(0).uniform(-1.5, 1.5, (5, 3))
    R = euler_to_rotation(ang)
    Rt = euler_to_rotation(torch.tensor(ang)).numpy()
    for a, r, rt in zip(ang, R, Rt):
        ref = _rz(a[2]) @ _ry(a[1]) @ _rx(a[0])
        np.testing.assert_allclose(r, ref, atol=1e-12)
        np.testing.assert_allclose(rt, ref, atol=1e-12)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)


def test_positive_yaw_turns_nose_to_image_right():
    nose = np.array([[[0.0, 0.0, 0.1]]])
    w = transform(nose, np.array([[0.0, 0.3, 0.0]]), np.zeros((1, 3)))
    uv, _ = project(w)
    assert uv[0, 0, 0] > 112  # +yaw rotates +z towards +x: image right


def test_project_centre_and_frames():
    cam = CameraConfig()
    pts = np.array([[[0.0, 0.0, 0.0], [0.01, 0.02, 0.0], [0.0, 0.0, 0.5]]])
    uv, z = project(pts, cam)
    np.testing.assert_allclose(uv[0, 0], [112, 112])
    np.testing.assert_allclose(uv[0, 1], [112 + 10.15, 112 - 20.3])  # +y up → smaller v
    np.testing.assert_allclose(z[0], [1.0, 1.0, 0.5])  # +z towards the camera → nearer
    uvt, zt = project(torch.tensor(pts), cam)
    np.testing.assert_allclose(uvt.numpy(), uv)
    s = cam.scaled(112)
    assert (s.size, s.focal, s.cx, s.cy, s.distance) == (112, 507.5, 56, 56, 1.0)
    np.testing.assert_allclose(project(pts, s)[0], uv / 2)


def test_crop_image_roundtrip_numpy_torch():
    th, sc = 0.3, 1.7
    M = np.array([[sc * np.cos(th), -sc * np.sin(th), 12.0], [sc * np.sin(th), sc * np.cos(th), -40.0]])
    pts = np.random.default_rng(1).uniform(0, 224, (2, 68, 2))
    img = crop_to_image(pts, M)
    np.testing.assert_allclose(image_to_crop(img, M), pts, atol=1e-9)
    np.testing.assert_allclose(crop_to_image(torch.tensor(pts), M).numpy(), img, atol=1e-9)
    np.testing.assert_allclose(invert_similarity(invert_similarity(M)), M, atol=1e-12)
    with pytest.raises(ValueError, match="singular"):
        invert_similarity(np.zeros((2, 3)))


def test_crop_to_image_agrees_with_opencv_warp():
    """A bright pixel in the original image, warped into the crop by OpenCV with M (converted to
    OpenCV's integer-centre convention), maps back onto its own pixel centre."""
    th, sc = -0.2, 0.8
    M = np.array([[sc * np.cos(th), -sc * np.sin(th), 30.0], [sc * np.sin(th), sc * np.cos(th), 10.0]])
    img = np.zeros((300, 400), np.float32)
    y, x = 140, 190
    img[y - 2:y + 3, x - 2:x + 3] = 1.0  # a 5×5 block centred on pixel (y, x)
    M_cv = M.copy()
    M_cv[:, 2] += M[:, :2].sum(1) * 0.5 - 0.5
    crop = cv2.warpAffine(img, M_cv, (224, 224), flags=cv2.INTER_LINEAR)
    ii, jj = np.nonzero(crop > 0)
    w = crop[ii, jj]
    centre_crop = np.array([(jj * w).sum() / w.sum() + 0.5, (ii * w).sum() / w.sum() + 0.5])
    back = crop_to_image(centre_crop[None], M)[0]
    np.testing.assert_allclose(back, [x + 0.5, y + 0.5], atol=0.05)
