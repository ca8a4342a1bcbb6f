"""MediaPipe landmarker, 68-point mapping and 5 points on real photos (faces/deep3d-examples)."""

from __future__ import annotations

import numpy as np
import pytest

from recon_cli.errors import InputError
from recon_cli.face.io import read_rgb
from recon_cli.face.landmarks68 import _resample, five_from_68, mesh_to_68
from recon_cli.face.mediapipe_mesh import FaceLandmarker, LandmarkerConfig


@pytest.fixture(scope="module")
def landmarker():
    with FaceLandmarker(LandmarkerConfig(static=True, max_faces=2)) as fl:
        yield fl


@pytest.fixture(scope="module")
def examples(shared_data):
    d = shared_data / "faces" / "deep3d-examples"
    out = []
    for img in sorted(p for p in d.iterdir() if p.suffix in (".jpg", ".png")):
        out.append((img, read_rgb(img), np.loadtxt(img.with_suffix(".txt"))))
    assert len(out) == 25
    return out


def test_every_example_is_detected_with_a_score(landmarker, examples):
    for path, img, _ in examples:
        faces = landmarker.detect(img)
        assert len(faces) >= 1, path.name  # max_faces=2: a background face may appear too
        f = faces[0]
        assert all(f.score >= g.score for g in faces)
        assert f.mesh.shape == (478, 3) and f.lm68.shape == (68, 2) and f.lm5.shape == (5, 2)
        assert 0.5 < f.score <= 1.0, (path.name, f.score)
        x0, y0, x1, y1 = f.bbox
        assert 0 <= x0 < x1 <= img.shape[1] + 5 and 0 <= y0 < y1 <= img.shape[0] + 5


def test_landmark_order_and_agreement_with_5_point_labels(landmarker, examples):
    errs = []
    for path, img, lab in examples:
        lm = landmarker.detect(img)[0].lm68
        # eyes: 36 < 39 < 42 < 45 from image left to right, brows above eyes
        assert lm[36, 0] < lm[39, 0] < lm[42, 0] < lm[45, 0], path.name
        assert lm[17:27, 1].mean() < lm[36:48, 1].mean(), path.name
        # nose below the eyes and above the mouth; nose tip between the eye centres
        eyes_y = lm[36:48, 1].mean()
        assert eyes_y < lm[30, 1] < lm[33, 1] < lm[51, 1] < lm[57, 1] < lm[8, 1], path.name
        assert lm[39, 0] - 20 < lm[30, 0] < lm[42, 0] + 20, path.name
        # mouth corners left/right, inner lips inside the outer ones
        assert lm[48, 0] < lm[60, 0] < lm[64, 0] < lm[54, 0], path.name
        assert lm[51, 1] <= lm[62, 1] + 1 and lm[66, 1] <= lm[57, 1] + 1, path.name
        # jaw: runs image-left → chin → image-right, chin lowest
        assert lm[0, 0] < lm[8, 0] < lm[16, 0] and np.argmax(lm[0:17, 1]) in (7, 8, 9), path.name
        io = np.linalg.norm(lab[0] - lab[1])
        errs.append(np.linalg.norm(five_from_68(lm) - lab, axis=1) / io)
    errs = np.array(errs)
    # the shipped labels are detector output: agreement within ~5 % of the inter-ocular distance
    assert errs.mean() < 0.08, errs.mean(0)
    assert errs.max() < 0.25, errs.max(0)


def test_jaw_is_evenly_spaced_along_the_oval():
    path = np.array([[0.0, 0], [1, 0], [3, 0], [3, 4]])
    r = _resample(path, 5)
    np.testing.assert_allclose(r, [[0, 0], [1.75, 0], [3, 0.5], [3, 2.25], [3, 4]])
    mesh = np.zeros((478, 3))
    from recon_cli.face.landmarks68 import JAW_PATH_LEFT, JAW_PATH_RIGHT

    for k, v in enumerate(JAW_PATH_RIGHT + JAW_PATH_LEFT[1:]):
        mesh[v] = [k * 10.0, 0, 0]
    lm = mesh_to_68(mesh)
    np.testing.assert_allclose(lm[0:17, 0], np.linspace(0, 220, 17), atol=1e-4)


def test_two_faces_and_bad_input(landmarker, examples):
    a, b = examples[0][1], examples[2][1]
    h = max(a.shape[0], b.shape[0])
    pad = lambda im: np.pad(im, ((0, h - im.shape[0]), (0, 0), (0, 0)))  # noqa: E731
    both = np.ascontiguousarray(np.concatenate([pad(a), pad(b)], 1))
    faces = landmarker.detect(both)
    assert len(faces) == 2
    xs = sorted(f.lm5[:, 0].mean() for f in faces)
    assert xs[0] < a.shape[1] < xs[1]
    with pytest.raises(InputError):
        landmarker.detect(np.zeros((10, 10), np.uint8))


def test_video_mode_tracks_and_keeps_the_score(shared_data):
    import cv2

    cap = cv2.VideoCapture(str(shared_data / "videos" / "d0.mp4"))
    frames = []
    while len(frames) < 8:
        ok, fr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(fr, cv2.COLOR_BGR2RGB))
    cap.release()
    assert len(frames) == 8
    with FaceLandmarker(LandmarkerConfig(static=False)) as fl:
        tracks = [fl.detect(f) for f in frames]
    assert all(len(t) == 1 for t in tracks)
    scores = [t[0].score for t in tracks]
    assert all(np.isfinite(s) and s > 0.5 for s in scores)
    motion = [np.abs(tracks[i + 1][0].lm68 - tracks[i][0].lm68).mean() for i in range(7)]
    assert max(motion) < 10.0  # tracked points move smoothly between consecutive frames


def test_upscale_and_pad_map_back_to_the_input(examples):
    img = examples[0][1]
    with FaceLandmarker() as plain, FaceLandmarker(upscale_to=1200, pad=0.2) as pre:
        a, b = plain.detect(img)[0], pre.detect(img)[0]
    io = np.linalg.norm(a.lm5[0] - a.lm5[1])
    assert np.abs(a.lm5 - b.lm5).max() < 0.06 * io
