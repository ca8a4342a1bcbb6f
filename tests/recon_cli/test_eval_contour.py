"""The BFM hidden-contour convention of `recon eval` (recon_cli/eval/contour.py) on the shipped ICT
model and the real BFM 68-point template of the development data."""

from __future__ import annotations

import numpy as np
import pytest

from recon_cli.errors import InputError
from recon_cli.eval.contour import (HiddenContour, TeacherInner, default_teacher_path, default_template_path,
                                    load_bfm_template, load_teacher_canonical, similarity_3d, teacher_gap,
                                    teacher_offsets, template_in_model_frame)
from recon_cli.face.landmarks68 import MIRROR68, mesh_to_68
from recon_cli.morphable import load_default_model
from recon_cli.render.camera import euler_to_rotation


@pytest.fixture(scope="module")
def model():
    return load_default_model()


@pytest.fixture(scope="module")
def template(shared_data):
    return load_bfm_template(default_template_path(shared_data / "aflw2000-3d"))


@pytest.fixture(scope="module")
def teacher(shared_data):
    return load_teacher_canonical(default_teacher_path(shared_data / "aflw2000-3d"))


def test_similarity_3d_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(30, 3))
    R = euler_to_rotation(np.array([0.3, -0.7, 1.1]))
    dst = 0.37 * src @ R.T + np.array([1.0, -2.0, 0.5])
    s, R2, t = similarity_3d(src, dst)
    assert s == pytest.approx(0.37) and np.allclose(R2, R) and np.allclose(t, [1.0, -2.0, 0.5])


def test_bfm_jaw_lies_deeper_than_ict_jaw(model, template):
    """The measured fact the convention rests on: inner points agree, the jaw is 2–3.5 cm deeper."""
    lm = np.asarray(model.mean_shape, np.float64)[model.landmarks68]
    t = template_in_model_frame(model, template)
    d = t - lm
    assert np.sqrt((d[17:] ** 2).sum(1).mean()) < 0.005  # inner points: < 0.5 cm rms
    jaw_sides = np.r_[0:6, 11:17]
    assert (d[jaw_sides, 2] < -0.02).all() and (d[jaw_sides, 2] > -0.035).all()  # behind, along −z
    c = HiddenContour.from_template(model, template)
    assert np.all(c.offsets[17:] == 0) and np.allclose(c.offsets[:17], d[:17])
    assert np.allclose(np.linalg.norm(c.normals, axis=1), 1.0)


def test_only_the_far_side_of_a_turned_jaw_is_hidden(model, template):
    c = HiddenContour.from_template(model, template)
    lm = np.asarray(model.mean_shape, np.float64)[model.landmarks68][None]
    trans = np.zeros((1, 3))

    def hidden(yaw_deg):
        R = euler_to_rotation(np.array([[0.0, np.radians(yaw_deg), 0.0]]))
        return np.where(c.hidden(lm, R, trans, 1.0)[0])[0]

    assert hidden(0).size == 0  # frontal: every jaw point is on the visible outline
    right, left = hidden(60), hidden(-60)
    assert set(right) <= set(range(8, 17)) and set(left) <= set(range(0, 9)) and len(right) >= 6
    assert sorted(16 - left) == sorted(right)  # the mean face is symmetric
    R = euler_to_rotation(np.array([[0.0, np.radians(60), 0.0]]))
    moved = c.apply(lm, R, trans, 1.0)[0]
    assert np.allclose(moved[right], lm[0, right] + c.offsets[right])
    keep = np.setdiff1d(np.arange(68), right)
    assert np.array_equal(moved[keep], lm[0, keep])


def test_reconstructor_dense_and_landmark_only_paths_agree(model, template):
    from recon_cli.pipeline.encoder_source import untrained_torch
    from recon_cli.pipeline.reconstruct import Reconstructor

    c = HiddenContour.from_template(model, template)
    plain = Reconstructor(untrained_torch("mobilenet_v3_small", model, threads=1), model)
    bfm = Reconstructor(untrained_torch("mobilenet_v3_small", model, threads=1), model, contour=c)
    lay = plain.layout
    coeffs = np.zeros((2, lay.total), np.float32)
    coeffs[:, lay.slices["id"]] = np.random.default_rng(1).normal(0, 1, (2, lay.n_id))
    coeffs[0, lay.slices["angles"]] = [0.1, np.radians(65), 0.05]
    coeffs[1, lay.slices["angles"]] = [0.0, 0.0, 0.0]
    Ms = np.repeat(np.array([[[1.3, 0.1, 20.0], [-0.1, 1.3, 5.0]]]), 2, 0)
    a = [r.lm68 for r in bfm.build(coeffs, Ms, dense=False)]
    b = [r.lm68 for r in bfm.build(coeffs, Ms, dense=True)]
    p = [r.lm68 for r in plain.build(coeffs, Ms, dense=False)]
    np.testing.assert_allclose(a[0], b[0], atol=1e-3)
    np.testing.assert_allclose(a[1], b[1], atol=1e-3)
    moved = np.linalg.norm(a[0] - p[0], axis=1) > 1.0  # px
    assert moved[:17].sum() >= 6 and not moved[17:].any()  # the turned face: its far jaw side only
    np.testing.assert_allclose(a[1], p[1], atol=1e-4)  # the frontal face: unchanged


def test_bad_template_files_are_clear_errors(tmp_path):
    from scipy.io import savemat

    with pytest.raises(InputError, match="template not found"):
        load_bfm_template(tmp_path / "none.mat")
    (tmp_path / "bad.mat").write_bytes(b"\x00garbage")
    with pytest.raises(InputError, match="bad.mat: cannot read"):
        load_bfm_template(tmp_path / "bad.mat")
    savemat(tmp_path / "short.mat", {"lm": np.zeros((5, 3))})
    with pytest.raises(InputError, match="expected 68×3"):
        load_bfm_template(tmp_path / "short.mat")


def test_teacher_canonical_face_is_mediapipes_mesh(teacher):
    assert teacher.shape == (468, 3) and np.isfinite(teacher).all()
    # cm, x right, y up, z towards the viewer: nose tip (4) in front, chin (152) below the nasion (168)
    assert teacher[4, 2] > teacher[168, 2] and teacher[152, 1] < teacher[168, 1] - 8.0
    assert teacher[33, 0] < 0 < teacher[263, 0]  # outer eye corners: the subject's right on the image left


def test_teacher_offsets_measure_the_bfm_inner_convention(model, template, teacher):
    """The measured gap the inner rule rests on (module docstring): the BFM's nose bridge is lower
    than the teacher's evenly spaced 300W bridge, most at point 29; the jaw is left alone."""
    o = teacher_offsets(model, template, teacher)  # metres, model space (y up)
    assert o.shape == (68, 3) and np.all(o[:17] == 0)
    assert (o[27:31, 1] < -0.003).all() and o[29, 1] < -0.008
    assert 0.002 < np.sqrt((o[17:] ** 2).sum(1).mean()) < 0.006  # 2–6 mm rms over 17–67
    # both faces are near symmetric, so the offsets are too: point k mirrors point MIRROR68[k]
    mirrored = o[MIRROR68] * np.array([-1.0, 1.0, 1.0])
    assert np.abs(mirrored - o)[17:].max() < 0.0015


def test_inner_offsets_apply_whatever_the_pose(model, template, teacher):
    c = HiddenContour.from_template(model, template, teacher)
    jawless = HiddenContour.from_template(model, template, teacher, jaw=False)
    lm = np.asarray(model.mean_shape, np.float64)[model.landmarks68][None]
    trans = np.zeros((1, 3))
    for yaw in (0.0, 60.0, -75.0):
        R = euler_to_rotation(np.array([[0.0, np.radians(yaw), 0.0]]))
        moved = c.apply(lm, R, trans, 1.0)[0]
        np.testing.assert_allclose(moved[17:], lm[0, 17:] + c.inner[17:])
        kept = jawless.apply(lm, R, trans, 1.0)[0]
        assert np.array_equal(kept[:17], lm[0, :17]) and np.allclose(kept[17:], moved[17:])
    # a turned face: the far jaw side still moves to the BFM contour
    R = euler_to_rotation(np.array([[0.0, np.radians(60), 0.0]]))
    assert c.hidden(lm, R, trans, 1.0)[0].sum() >= 6


def test_bad_teacher_files_are_clear_errors(tmp_path):
    import zipfile

    with pytest.raises(InputError, match="task bundle not found") as e:
        load_teacher_canonical(tmp_path / "none.task")
    assert "--inner model" in e.value.hint
    (tmp_path / "bad.task").write_bytes(b"\x00garbage")
    with pytest.raises(InputError, match="bad.task: cannot read MediaPipe's canonical face mesh"):
        load_teacher_canonical(tmp_path / "bad.task")
    with zipfile.ZipFile(tmp_path / "empty.task", "w") as z:
        z.writestr("face_detector.tflite", b"")
    with pytest.raises(InputError, match="empty.task: cannot read"):
        load_teacher_canonical(tmp_path / "empty.task")


def test_teacher_inner_carries_the_gap_onto_an_image_mesh(template, teacher):
    """The baseline's version: a mesh that is the canonical face turned, scaled and placed in an
    image (x right, y down, z away) gets exactly that similarity applied to the canonical gap."""
    conv = TeacherInner.from_template(template, teacher)
    R = euler_to_rotation(np.array([0.2, np.radians(50), -0.1]))
    s, t = 6.5, np.array([300.0, 240.0, 0.0])
    flip = np.array([1.0, -1.0, -1.0])
    mesh = (s * teacher @ R.T) * flip + t
    got = conv.points68(mesh)
    plain = mesh_to_68(mesh)
    np.testing.assert_allclose(got[:17], plain[:17], atol=1e-3)  # the jaw is not moved
    expect = plain + ((s * teacher_gap(template, teacher) @ R.T) * flip)[:, :2]
    np.testing.assert_allclose(got, expect, atol=1e-3)
    assert np.abs(got[29] - plain[29]).max() > 3.0  # px: the bridge point really moves


def _on_polyline(p, line):
    """Distance of point ``p`` (3,) to the polyline ``line`` (n, 3)."""
    best = np.inf
    for a, b in zip(line[:-1], line[1:]):
        t = np.clip(np.dot(p - a, b - a) / np.dot(b - a, b - a), 0.0, 1.0)
        best = min(best, float(np.linalg.norm(a + t * (b - a) - p)))
    return best


def test_jaw_spacing_slides_along_the_jaw_to_the_bfm_fractions(model, template, teacher):
    """The visible-jaw rule: each jaw point moves along the mean jaw (never off it) to the BFM
    template's arc-length fraction; the ends and the chin stay; the same face twice moves nothing."""
    from recon_cli.eval.contour import jaw_fractions, jaw_spacing, model_jaw_spacing
    from recon_cli.face.landmarks68 import mesh_to_68_3d

    t68 = mesh_to_68_3d(teacher)
    jaw = np.asarray(model.mean_shape, np.float64)[model.landmarks68][:17]
    off = model_jaw_spacing(model, template, teacher)
    assert off.shape == (68, 3) and not off[17:].any() and not off[[0, 16]].any()
    assert np.linalg.norm(off[8]) < 2e-4  # the chin: both faces put it half-way (0.1 mm apart)
    assert 0.002 < np.abs(off[:17]).max() < 0.01  # millimetres, not centimetres
    moved = jaw + off[:17]
    assert max(_on_polyline(p, jaw) for p in moved) < 1e-9
    # the moved points sit at the template's fractions of the jaw's length, measured along the jaw
    length = np.linalg.norm(np.diff(jaw[:, :2], axis=0), axis=1).sum()
    arc = jaw_fractions(jaw) * length
    want = arc + (jaw_fractions(template[:17]) - jaw_fractions(t68[:17])) * length
    seg = np.linalg.norm(np.diff(jaw[:, :2], axis=0), axis=1)
    for k, p in enumerate(moved):
        i = int(np.argmin([_on_polyline(p, jaw[j:j + 2]) for j in range(16)]))
        got = arc[i] + np.linalg.norm(p[:2] - jaw[i, :2])
        assert got == pytest.approx(want[k], abs=1e-6 * length + 1e-12) or seg[i] == 0
    # the teacher's direction: points 2–6 and 10–14 move away from the chin (the residual it explains)
    assert (np.abs(moved[3:6, 1] - jaw[8, 1]) < np.abs(jaw[3:6, 1] - jaw[8, 1])).sum() == 0
    assert not jaw_spacing(t68[:17], t68, t68).any()  # one convention against itself: nothing moves


def test_jaw_spacing_applies_to_visible_jaw_points_only(model, template, teacher):
    c = HiddenContour.from_template(model, template, teacher, spacing=True)
    hidden_only = HiddenContour.from_template(model, template, teacher)
    lm = np.asarray(model.mean_shape, np.float64)[model.landmarks68][None]
    trans = np.zeros((1, 3))
    for yaw in (0.0, 60.0, -75.0):
        R = euler_to_rotation(np.array([[0.0, np.radians(yaw), 0.0]]))
        h = c.hidden(lm, R, trans, 1.0)[0]
        a, b = c.apply(lm, R, trans, 1.0)[0], hidden_only.apply(lm, R, trans, 1.0)[0]
        np.testing.assert_allclose(a[h], b[h])  # hidden points: the BFM contour, no spacing on top
        np.testing.assert_allclose(a[17:], b[17:])  # inner points untouched
        vis = np.flatnonzero(~h[:17])
        np.testing.assert_allclose(a[vis] - b[vis], c.visible[vis])
    with pytest.raises(ValueError, match="teacher"):
        HiddenContour.from_template(model, template, None, spacing=True)
    # MediaPipe's own points get the same spacing along its canonical face's jaw
    plain = TeacherInner.from_template(template, teacher)
    spaced = TeacherInner.from_template(template, teacher, spacing=True)
    assert not plain.gap[:17].any() and np.abs(spaced.gap[:17]).max() > 0.1  # canonical units: cm
    np.testing.assert_allclose(spaced.gap[17:], plain.gap[17:])
    assert not TeacherInner.from_template(template, teacher, inner=False, spacing=True).gap[17:].any()
