"""5-point similarity alignment: Umeyama, warp convention, round trip, template, padding."""

from __future__ import annotations

import numpy as np
import pytest

from recon_cli.face.align import (TEMPLATE_5, AlignConfig, align_face, compute_template, crop_camera, invert_affine,
                                  template, transform_points, umeyama_similarity, warp)
from recon_cli.render.camera import CameraConfig


def _sim(scale, theta, t):
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[scale * c, -scale * s, t[0]], [scale * s, scale * c, t[1]]])


def test_umeyama_recovers_a_similarity_and_never_reflects():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 300, (5, 2))
    M = _sim(1.7, 0.4, (12.0, -30.0))
    np.testing.assert_allclose(umeyama_similarity(src, transform_points(src, M)), M, atol=1e-9)
    mirrored = src * [-1, 1]
    R = umeyama_similarity(src, mirrored)[:, :2]
    assert np.linalg.det(R) > 0  # best proper similarity, not the reflection
    noisy = transform_points(src, M) + rng.normal(0, 0.5, (5, 2))
    assert np.abs(umeyama_similarity(src, noisy) - M).max() < 0.5


def _blobs(shape, pts, sigma=2.0):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]] + 0.5  # pixel centres, camera convention
    img = np.zeros(shape, np.float64)
    for x, y in pts:
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))
    return img


def test_crop_to_original_round_trip_within_half_a_pixel():
    import cv2

    pts = np.array([[150.3, 180.7], [260.1, 175.2], [205.9, 240.4], [160.4, 300.8], [250.6, 296.1]])
    img = (255 * np.clip(_blobs((480, 420), pts), 0, 1)).astype(np.uint8)
    img3 = np.repeat(img[:, :, None], 3, 2)
    al = align_face(img3, pts)
    crop = al.crop[:, :, 0].astype(np.float64)
    # find each blob in the crop (intensity-weighted centroid in a window), map back with M_inv
    expect = transform_points(pts, al.M)
    yy, xx = np.mgrid[0:224, 0:224] + 0.5
    for p_crop, p_orig in zip(expect, pts):
        win = (np.abs(xx - p_crop[0]) < 9) & (np.abs(yy - p_crop[1]) < 9)
        w = crop * win
        found = np.array([(w * xx).sum(), (w * yy).sum()]) / w.sum()
        back = transform_points(found, al.M_inv)
        assert np.linalg.norm(back - p_orig) < 0.5, (back, p_orig)
    np.testing.assert_allclose(transform_points(transform_points(pts, al.M), al.M_inv), pts, atol=1e-9)
    np.testing.assert_allclose(invert_affine(invert_affine(al.M)), al.M, atol=1e-9)
    # the 5 points land on the template (exact correspondence: zero residual)
    np.testing.assert_allclose(expect, template(), atol=25)
    assert cv2 is not None


def test_template_matches_the_default_model():
    from recon_cli.paths import DEFAULT_MODEL_PATH

    if not DEFAULT_MODEL_PATH.is_file():
        pytest.skip("default morphable model not built")
    np.testing.assert_allclose(compute_template(), TEMPLATE_5, atol=1e-3)


def test_compute_template_projects_the_mean_landmarks(random_model):
    from recon_cli.face.landmarks68 import five_from_68
    from recon_cli.render.camera import project

    cam = CameraConfig()
    t = compute_template(random_model, cam)
    lm = random_model.mean_shape[random_model.landmarks68].astype(np.float64)
    np.testing.assert_allclose(t, five_from_68(project(lm[None], cam)[0][0]), atol=1e-9)


def test_scale_and_size_act_like_the_camera():
    cfg = AlignConfig(size=112, scale=1.25)
    cam = crop_camera(cfg)
    assert cam.size == 112 and cam.focal == pytest.approx(1015.0 * 0.5 * 1.25)
    base = template()
    np.testing.assert_allclose(template(cfg), 56 + 1.25 * (base * 0.5 - 56))


def test_crops_leaving_the_image_are_padded():
    img = np.full((100, 100, 3), 200, np.uint8)
    pts = template() * 0.3  # a tiny face in the corner: the crop extends far outside
    al = align_face(img, pts - 5, AlignConfig(border="constant"))
    assert al.crop.shape == (224, 224, 3)
    assert (al.crop == 0).any() and (al.crop == 200).any()
    rep = align_face(img, pts - 5, AlignConfig(border="replicate"))
    assert (rep.crop == 200).all()
    with pytest.raises(ValueError):
        warp(img, al.M, 224, border="wrap")
