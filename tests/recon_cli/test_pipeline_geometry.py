"""Reconstructor geometry: crop projection mapped back to the original image through M⁻¹."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from recon_cli.face.align import TEMPLATE_5
from recon_cli.face.landmarks68 import five_from_68
from recon_cli.morphable import load_default_model
from recon_cli.pipeline.encoder_source import untrained_torch
from recon_cli.pipeline.reconstruct import Reconstructor, rotation_to_euler
from recon_cli.render.camera import euler_to_rotation, project


@pytest.fixture(scope="module")
def model():
    return load_default_model()


@pytest.fixture(scope="module")
def recon(model):
    return Reconstructor(untrained_torch("mobilenet_v3_small", model, threads=1), model)


def _similarity(s, phi, tx, ty):
    return np.array([[s * math.cos(phi), -s * math.sin(phi), tx], [s * math.sin(phi), s * math.cos(phi), ty]])


def _coeffs(recon, angles, trans, seed=0):
    lay, rng = recon.layout, np.random.default_rng(seed)
    c = np.zeros(lay.total, np.float32)
    c[lay.slices["id"]] = rng.normal(0, 1, lay.n_id)
    c[lay.slices["exp"]] = rng.uniform(0, 0.4, lay.n_exp)
    c[lay.slices["angles"]] = angles
    c[lay.slices["trans"]] = trans
    return c


@pytest.mark.parametrize("angles,trans,M", [
    ((0.1, -0.3, 0.05), (0.01, -0.005, 0.02), _similarity(0.6, 0.3, -80.0, 40.0)),
    ((-0.2, 0.6, -0.1), (-0.02, 0.01, -0.03), _similarity(1.7, -1.2, 150.0, -300.0)),
])
def test_landmarks_map_back_exactly_through_inverse_similarity(model, recon, angles, trans, M):
    c = _coeffs(recon, angles, trans)
    lay = recon.layout
    # independent reference: decode, pose, project in the crop, then OpenCV's inverse affine
    verts = model.shape(c[None, lay.slices["id"]], c[None, lay.slices["exp"]])[0].astype(np.float64)
    world = verts @ euler_to_rotation(np.array(angles)).T + np.array(trans)
    uv, _ = project(world[None], recon.cam)
    lm_crop = uv[0, model.landmarks68]
    ref = cv2.transform(lm_crop[None], cv2.invertAffineTransform(M))[0]
    rec = recon.build(c[None], M[None])[0]
    np.testing.assert_allclose(rec.lm68_crop, lm_crop, atol=1e-3)
    np.testing.assert_allclose(rec.lm68, ref, atol=1e-3)
    np.testing.assert_allclose(rec.verts_img[model.landmarks68, :2], rec.lm68, atol=1e-4)
    # landmark-only decode (evaluation) gives the same landmarks
    sparse = recon.build(c[None], M[None], dense=False)[0]
    np.testing.assert_allclose(sparse.lm68, rec.lm68, atol=1e-3)
    assert sparse.verts_img is None


def test_virtual_camera_reproduces_image_projection(recon):
    M = _similarity(0.45, 0.7, 30.0, -20.0)
    rec = recon.build(_coeffs(recon, (0.2, 0.4, -0.3), (0.01, 0.02, -0.01))[None], M[None])[0]
    s = 0.45
    cx, cy = cv2.transform(np.array([[[recon.cam.cx, recon.cam.cy]]]), cv2.invertAffineTransform(M))[0, 0]
    v = rec.verts_cam.astype(np.float64)
    depth = -v[:, 2]  # camera at the origin looking down −z
    u = cx + (recon.cam.focal / s) * v[:, 0] / depth
    w = cy - (recon.cam.focal / s) * v[:, 1] / depth
    np.testing.assert_allclose(np.stack([u, w], 1), rec.verts_img[:, :2], atol=1e-2)
    assert np.all(depth > 0.5) and np.all(depth < 1.5)  # the face sits about `distance` metres away


def test_image_roll_and_depth(model, recon):
    # frontal face, crop roll 0.1 rad; the crop itself rotated by M: the eye line in the image
    # (y up) must show the total roll, and the nose tip must be the nearest landmark
    phi = -0.4
    M = _similarity(0.8, phi, 10.0, 5.0)
    rec = recon.build(_coeffs(recon, (0.0, 0.0, 0.1), (0, 0, 0))[None], M[None])[0]
    mean_shape = recon.build(np.zeros((1, recon.layout.total), np.float32), M[None])[0]
    eyes = five_from_68(mean_shape.lm68)[:2]
    eye_angle = math.atan2(-(eyes[1, 1] - eyes[0, 1]), eyes[1, 0] - eyes[0, 0])  # y up
    np.testing.assert_allclose(mean_shape.angles_img[2], eye_angle, atol=0.01)  # the image roll = φ of M (y up)
    np.testing.assert_allclose(rec.angles_img, [0.0, 0.0, 0.1 + phi], atol=1e-6)
    z = rec.verts_img[model.landmarks68, 2]
    assert int(np.argmax(z)) == 30 and z[30] > 0  # nose tip towards the camera, px
    # depth px and x px share one scale: the face is about as deep as it is wide in metres
    ext_px = np.ptp(rec.verts_img, axis=0)
    ext_m = np.ptp(model.mean_shape, axis=0)
    np.testing.assert_allclose(ext_px[2] / ext_px[0], ext_m[2] / ext_m[0], rtol=0.1)


def test_rotation_to_euler_inverts_euler_to_rotation():
    rng = np.random.default_rng(0)
    a = np.stack([rng.uniform(-1.2, 1.2, 200), rng.uniform(-1.4, 1.4, 200), rng.uniform(-3, 3, 200)], 1)
    np.testing.assert_allclose(rotation_to_euler(euler_to_rotation(a)), a, atol=1e-9)


def test_untrained_encoder_reproduces_the_input_five_points(model, recon):
    """Full path on an image: an untrained encoder predicts the mean face, frontal, centred, so the
    reconstructed 5 points are exactly the 5 points the crop was aligned with — for any similarity."""
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    for s, phi, t in ((1.0, 0.0, (200.0, 100.0)), (1.8, 0.5, (300.0, 250.0)), (0.7, -2.5, (420.0, 300.0))):
        A = _similarity(s, phi, 0, 0)[:, :2]
        lm5 = TEMPLATE_5 @ A.T + np.array(t)  # the template, rotated, scaled and moved into the image
        rec = recon(image, [lm5])[0]
        np.testing.assert_array_equal(rec.vector, 0.0)
        np.testing.assert_allclose(five_from_68(rec.lm68), lm5, atol=2e-3)
        np.testing.assert_allclose(rec.M @ np.r_[lm5[2], 1.0], TEMPLATE_5[2], atol=1e-6)


def test_faces_are_batched_in_one_encoder_call(model):
    calls = []
    backend = untrained_torch("mobilenet_v3_small", model, threads=1)

    class Counting:  # the real backend, counting its calls
        name, meta = backend.name, backend.meta

        def __call__(self, x):
            calls.append(x.shape[0])
            return backend(x)

    rec = Reconstructor(Counting(), model)
    image = np.zeros((480, 640, 3), np.uint8)
    faces = [TEMPLATE_5 + [dx, 50.0] for dx in (0.0, 200.0, 400.0)]
    out = rec(image, faces)
    assert calls == [3] and len(out) == 3
    np.testing.assert_allclose([r.lm68[:, 0].mean() for r in out][1] - out[0].lm68[:, 0].mean(), 200.0, atol=1e-3)


def test_source_resolution_comes_from_the_weights(model):
    """``source_res="train"`` (default) resamples sharp photos to the weights' ``source_scale``;
    weights without one, or ``"native"``, crop straight from the photo; other values are refused."""
    from recon_cli.errors import InputError
    from recon_cli.face.align import similarity_scale

    backend = untrained_torch("mobilenet_v3_small", model, threads=1)
    assert Reconstructor(backend, model).align_cfg.source_scale is None

    class Recorded:  # the real backend, with the training resolution its weights would record
        name, meta = backend.name, {**backend.meta, "source_scale": 1.8}

        def __call__(self, x):
            return backend(x)

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (900, 900, 3), dtype=np.uint8)
    lm5 = (TEMPLATE_5 - 112.0) / 0.5 + 450.0  # a face twice the crop: 0.5 crop px per photo px
    sharp, native = Reconstructor(Recorded(), model), Reconstructor(Recorded(), model, source_res="native")
    assert sharp.align_cfg.source_scale == 1.8 and native.align_cfg.source_scale is None
    a, b = sharp.align(image, [lm5])[0], native.align(image, [lm5])[0]
    assert similarity_scale(a.M) == pytest.approx(0.5) and np.array_equal(a.M, b.M)
    assert a.crop.std() < 0.5 * b.crop.std()  # the noise's photo-px detail is gone, as in the training faces
    with pytest.raises(InputError, match="source-res"):
        Reconstructor(Recorded(), model, source_res="sharp")
