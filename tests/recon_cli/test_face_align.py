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


def _face_points(scale, centre=(300.0, 300.0)):
    """5 points whose alignment has crop px per source px = ``scale`` (a face 1/scale the crop's size)."""
    return (template(AlignConfig()) - 112.0) / scale + np.asarray(centre)


def test_sharp_sources_are_resampled_to_the_training_resolution():
    from recon_cli.face.align import similarity_scale

    rng = np.random.default_rng(3)
    noise = (rng.random((600, 600, 3)) * 255).astype(np.uint8)
    ramp = np.tile(np.linspace(0, 255, 600)[None, :, None], (600, 1, 3)).astype(np.uint8)
    lm5 = _face_points(0.4)  # a face 2.5× the crop: sharper than training at 1.8 crop px per source px
    native, train = align_face(noise, lm5, AlignConfig()), align_face(noise, lm5, AlignConfig(source_scale=1.8))
    assert similarity_scale(native.M) == pytest.approx(0.4)
    np.testing.assert_array_equal(native.M, train.M)  # the geometry is the same ...
    # ... the detail is the training faces': 0.4/1.8 of the source px survive, averaged (noise std ÷ ~4.5)
    assert train.crop.std() < 0.35 * native.crop.std()
    smooth_n, smooth_t = align_face(ramp, lm5, AlignConfig()), align_face(ramp, lm5, AlignConfig(source_scale=1.8))
    assert np.abs(smooth_n.crop.astype(int) - smooth_t.crop.astype(int))[8:-8, 8:-8].max() <= 2  # nothing moves
    # a face at or below the training resolution is cropped as before, bit for bit
    lm5_small = _face_points(2.0)
    np.testing.assert_array_equal(align_face(noise, lm5_small, AlignConfig()).crop,
                                  align_face(noise, lm5_small, AlignConfig(source_scale=1.8)).crop)


def test_resampling_only_touches_the_covered_region_and_survives_the_edge():
    from recon_cli.face.align import resample_source

    yy, xx = np.mgrid[0:900, 0:1200]
    img = np.stack([xx * 0.2, yy * 0.25, (xx + yy) * 0.1], -1).astype(np.uint8)  # smooth: resampling keeps it
    lm5 = _face_points(0.5, centre=(20.0, 880.0))  # half off the photo's bottom-left corner
    M = umeyama_similarity(lm5, template(AlignConfig()))
    small, Ms = resample_source(img, M, 0.25, 224)
    assert small.shape[0] * small.shape[1] < 0.1 * img.shape[0] * img.shape[1]  # the covered region only
    native = warp(img, M, 224)
    resampled = align_face(img, lm5, AlignConfig(source_scale=2.0)).crop
    inside = native.max(-1) > 0
    assert np.abs(native.astype(int) - resampled.astype(int))[inside].mean() < 1.0  # same geometry
    assert (resampled[~inside] == 0).mean() > 0.95  # outside the photo stays padded
    far = umeyama_similarity(_face_points(0.5, centre=(-5000.0, -5000.0)), template(AlignConfig()))
    same, Mf = resample_source(img, far, 0.25, 224)  # the crop misses the photo: nothing to resample
    assert same is img and Mf is far
