"""AFLW-convention calibration (recon_cli/eval/aflw21_calib.py): the fit recovers a known offset,
the file round-trips and refuses another encoder, and `recon eval calibrate` runs on real AFLW crops."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recon_cli.errors import InputError
from recon_cli.eval import aflw21_calib as ac


def _poses(n: int, seed: int = 0):
    """The default model's mean landmarks under ``n`` head poses (yaw ±85°), model space and pose."""
    from recon_cli.face.align import AlignConfig, crop_camera
    from recon_cli.morphable import load_default_model
    from recon_cli.render.camera import euler_to_rotation

    model = load_default_model()
    rng = np.random.default_rng(seed)
    ang = np.stack([rng.uniform(-0.3, 0.3, n), rng.uniform(-1.48, 1.48, n), rng.uniform(-0.2, 0.2, n)], 1)
    R = euler_to_rotation(ang)
    t = np.stack([rng.uniform(-0.01, 0.01, n), rng.uniform(-0.01, 0.01, n), rng.uniform(-0.05, 0.05, n)], 1)
    lm = np.repeat(np.asarray(model.mean_shape, np.float64)[model.landmarks68][None], n, 0)
    return lm, R, t, crop_camera(AlignConfig())


def test_point_jacobian_matches_finite_differences():
    lm, R, t, cam = _poses(4)
    uv, duv = ac.point_jacobians(lm, R, t, cam)
    h = 1e-6
    for axis in range(3):
        step = np.zeros(3)
        step[axis] = h
        uv2, _ = ac.point_jacobians(lm + step, R, t, cam)
        np.testing.assert_allclose((uv2 - uv) / h, duv[..., axis], rtol=1e-4, atol=1e-3)


def test_fit_recovers_a_known_symmetric_offset_and_shrugs_off_outliers():
    """Labels = the projected points moved by a known model-space offset (mirror-symmetric, as the
    convention is), plus a few wild labels: the fit finds the offset within 0.3 mm, depth included."""
    lm, R, t, cam = _poses(300)
    truth = {k: np.zeros(3) for k in ac.FIT}
    rng = np.random.default_rng(1)
    for k in ac.FIT:
        if k in ac.MIRROR and k > ac.MIRROR[k]:
            continue
        truth[k] = rng.uniform(-0.006, 0.006, 3)  # up to 6 mm
        if k in ac.MIRROR:
            truth[ac.MIRROR[k]] = truth[k] * np.array([-1.0, 1.0, 1.0])
    moved = lm + ac.expand68(truth)[None]
    uv_true, _ = ac.point_jacobians(moved, R, t, cam)
    labels = np.full((len(lm), 21, 2), np.nan)
    for k, combo in ac.FIT.items():
        labels[:, k] = sum(a * uv_true[:, j] for j, a in combo.items())
    labels[:10, 0] += 40.0  # ten mislabelled outer brows (40 px)
    labels[10:20, 6] = np.nan  # and some invisible eyes
    uv, duv = ac.point_jacobians(lm, R, t, cam)
    rows = ac.Rows()
    rows.add(uv, duv, labels)
    assert len(rows.r[6]) == len(lm) - 10
    got = ac.symmetrise({k: ac.solve(np.asarray(rows.A[k]), np.asarray(rows.r[k]))[0] for k in ac.FIT})
    for k in ac.FIT:
        np.testing.assert_allclose(got[k], truth[k], atol=3e-4, err_msg=f"AFLW point {k + 1}")
    # and the offset is not nothing: without it the labels are missed by millimetres
    assert max(np.abs(v).max() for v in truth.values()) > 0.004


def test_expand68_maps_the_points_and_leaves_the_nose_and_jaw_alone():
    delta = {k: np.full(3, float(k + 1)) for k in ac.FIT}
    off = ac.expand68(delta)
    assert (off[17] == 1).all() and (off[26] == 6).all() and (off[[37, 38, 40, 41]] == 8).all()
    assert (off[18] == 1.5).all() and (off[25] == 5.5).all()  # between two AFLW brow points
    assert (off[[62, 66]] == 19).all() and (off[8] == 21).all()
    untouched = [j for j in range(68) if j < 8 or 9 <= j < 17 or 27 <= j < 36 or j in (49, 50, 51, 52, 53, 55,
                                                                                          56, 57, 58, 59, 60, 61, 63, 64, 65, 67)]
    assert not off[untouched].any()


def test_calibration_round_trips_and_refuses_another_encoder(tmp_path):
    enc = tmp_path / "a.pt"
    enc.write_bytes(b"weights a")
    other = tmp_path / "b.pt"
    other.write_bytes(b"weights b")
    off = np.random.default_rng(0).normal(0, 0.003, (68, 3))
    rules = {"contour": "bfm-hidden", "inner": "bfm"}
    path = ac.Calibration(off, {"weights_sha256": ac.weights_digest(enc), "rules": rules}).save(ac.beside(enc))
    assert path == tmp_path / "a.pt.aflw21.json"
    cal = ac.Calibration.load(path)
    np.testing.assert_allclose(cal.offsets, off, atol=1e-7)
    cal.check(enc, rules)
    with pytest.raises(InputError, match="another predictor"):
        cal.check(other, rules)
    with pytest.raises(InputError, match="another predictor than MediaPipe's points"):
        cal.check(None, rules)
    with pytest.raises(InputError, match="scoring rules"):
        cal.check(enc, {"contour": "model", "inner": "bfm"})
    # a file fitted before the yaw-symmetry rule existed was fitted without it
    cal.check(enc, {**rules, "symmetry": "none"})
    assert not cal.fits_rules({**rules, "symmetry": "yaw"})
    # found beside the weights (auto): left out under other rules, still refused for another encoder
    assert ac.resolve(path, enc, {"contour": "model", "inner": "model"}, auto=True) is None
    assert ac.resolve(path, enc, rules, auto=True) is not None and ac.resolve(None, enc, rules) is None
    with pytest.raises(InputError, match="another predictor"):
        ac.resolve(path, other, rules, auto=True)
    with pytest.raises(InputError, match="scoring rules"):
        ac.resolve(path, enc, {"contour": "model", "inner": "model"})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="not a calibration file"):
        ac.Calibration.load(tmp_path / "bad.json")
    with pytest.raises(InputError, match="not found"):
        ac.Calibration.load(tmp_path / "nope.json")


def test_carry_follows_an_export_and_skips_a_stale_file(tmp_path):
    src, dst = tmp_path / "w.pt", tmp_path / "w.onnx"
    src.write_bytes(b"checkpoint")
    dst.write_bytes(b"exported graph")
    assert ac.carry(src, dst) is None  # nothing beside the source
    off = np.full((68, 3), 0.001)
    ac.Calibration(off, {"weights_sha256": ac.weights_digest(src), "rules": {"inner": "bfm"}}).save(ac.beside(src))
    got = ac.Calibration.load(ac.carry(src, dst))
    assert ac.beside(dst).name == "w.onnx.aflw21.json"
    got.check(dst, {"inner": "bfm"})  # valid for the export
    assert got.info["carried_from"]["weights_sha256"] == ac.weights_digest(src)
    np.testing.assert_allclose(got.offsets, off)
    src.write_bytes(b"retrained checkpoint")  # the calibration beside it is now stale
    ac.beside(dst).unlink()
    assert ac.carry(src, dst) is None and not ac.beside(dst).exists()


@pytest.mark.data
def test_calibrate_cli_on_aflw_crops_then_eval_uses_it(shared_data, tmp_path, capsys):
    """The real encoder (the shipped default) on 40 real AFLW-train crops; the file it writes is what
    `recon eval aflw2000 --calib` applies, and it is refused for another encoder."""
    pytest.importorskip("torch")
    from recon_cli.cli.app import main
    from recon_cli.eval.predictors import default_weights
    from train.prep import PrepOptions, run_prep

    weights = default_weights()
    if weights is None:
        pytest.skip("no shipped weights")
    aflw = shared_data / "aflw-train"
    names = (aflw / "list.txt").read_text().split()[:40]
    lst = tmp_path / "aflw.txt"
    lst.write_text("".join(f"{aflw / 'images' / n}\n" for n in names))
    ds = tmp_path / "ds"
    run_prep(lst, ds, PrepOptions(pts21=str(aflw / "pts21.npy"), workers=2), progress=False)
    rules = ["--bfm-template", str(shared_data / "bfm-topology" / "similarity_Lm3D_all.mat"),
             "--teacher-mesh", str(shared_data / "mediapipe" / "face_landmarker.task")]
    cal = tmp_path / "c.aflw21.json"
    with pytest.raises(SystemExit) as e:
        main(["eval", "calibrate", str(ds), "--split", "all", "--out", str(cal), "--quiet", "--json",
              str(tmp_path / "c.json"), *rules])
    out = capsys.readouterr()
    assert e.value.code in (0, None), out.out + out.err
    assert "brow outer L" in out.out and str(cal.name) in out.out
    info = json.loads((tmp_path / "c.json").read_text())
    assert info["faces"] >= 30 and info["rules"] == {"contour": "bfm", "inner": "bfm", "symmetry": "yaw"}
    assert set(info["points"]) == {str(k + 1) for k in ac.FIT}
    for st in info["points"].values():  # the fitted offset never makes its own faces worse
        assert st["nme_after_pct"] <= st["nme_before_pct"] + 1e-6
    c = ac.Calibration.load(cal)
    assert np.abs(c.offsets).max() > 1e-4 and not c.offsets[27:36].any()

    data = shared_data / "aflw2000-3d"
    with pytest.raises(SystemExit) as e:
        main(["eval", "aflw2000", "--data", str(data), "--limit", "2", "--quiet", "--calib", str(cal),
              "--json", str(tmp_path / "e.json")])
    out = capsys.readouterr()
    assert e.value.code in (0, None), out.out + out.err
    run = json.loads((tmp_path / "e.json").read_text())["runs"][0]
    assert run["settings"]["aflw21_calib"]["file"] == str(cal) and "AFLW calib" in out.out
    with pytest.raises(SystemExit) as e:
        main(["eval", "aflw2000", "--data", str(data), "--limit", "2", "--quiet", "--calib", "none",
              "--json", str(tmp_path / "n.json")])
    capsys.readouterr()
    run_n = json.loads((tmp_path / "n.json").read_text())["runs"][0]
    assert run_n["settings"]["aflw21_calib"] is None
    assert [x["nme_pct"] for x in run_n["per_image"]] != [x["nme_pct"] for x in run["per_image"]]

    # wrong encoder, wrong rules, missing files: a message and a fix, exit 2
    other = tmp_path / "other.pt"
    raw = weights.read_bytes()
    other.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))  # one bit off: another file
    for args, msg in [(["--weights", str(other)], "fitted for another predictor"),
                      (["--method", "mediapipe"], "fitted for another predictor than MediaPipe's points"),
                      (["--inner", "model"], "scoring rules"),
                      (["--yaw-symmetry", "off"], "scoring rules"),
                      (["--calib", str(tmp_path / "nope.json")], "calibration file not found")]:
        argv = ["eval", "aflw2000", "--data", str(data), "--limit", "1", "--quiet", "--calib", str(cal), *args]
        with pytest.raises(SystemExit) as e:
            main(argv)
        cap = capsys.readouterr()
        got = " ".join((cap.out + cap.err).split())
        assert e.value.code == 2 and msg in got, got
    # the baseline's own calibration: MediaPipe's points, offsets in its canonical frame
    mp = tmp_path / "mp.aflw21.json"
    with pytest.raises(SystemExit) as e:
        main(["eval", "calibrate", str(ds), "--method", "mediapipe", "--split", "all", "--out", str(mp), "--quiet", *rules])
    out = capsys.readouterr()
    assert e.value.code in (0, None), out.out + out.err
    cm = ac.Calibration.load(mp)
    assert cm.info["method"] == "mediapipe" and cm.info["rules"] == {"contour": "bfm-spacing", "inner": "bfm"} and np.abs(cm.offsets).max() > 1e-4
    runs = {}
    for name, extra in (("cal", ["--calib", str(mp)]), ("off", ["--calib", "none"]), ("auto", [])):
        with pytest.raises(SystemExit) as e:
            main(["eval", "aflw2000", "--data", str(data), "--method", "mediapipe", "--limit", "2", "--quiet",
                  "--json", str(tmp_path / f"mp_{name}.json"), *extra])
        capsys.readouterr()
        assert e.value.code in (0, None)
        runs[name] = json.loads((tmp_path / f"mp_{name}.json").read_text())["runs"][0]
    assert runs["cal"]["settings"]["aflw21_calib"]["file"] == str(mp) and runs["off"]["settings"]["aflw21_calib"] is None
    assert [x["nme_pct"] for x in runs["cal"]["per_image"]] != [x["nme_pct"] for x in runs["off"]["per_image"]]
    # by default the baseline is scored with its shipped calibration, as the encoder is with its own
    assert runs["auto"]["settings"]["aflw21_calib"]["file"].endswith("recon_cli/weights/mediapipe.aflw21.json")
    for argv, msg in [(["eval", "calibrate", str(ds), "--method", "mediapipe", *rules], "--out"),
                      (["eval", "aflw2000", "--data", str(data), "--method", "mediapipe", "--calib", str(cal)],
                       "another predictor than MediaPipe's points")]:
        with pytest.raises(SystemExit) as e:
            main([*argv, "--quiet"])
        cap = capsys.readouterr()
        got = " ".join((cap.out + cap.err).split())
        assert e.value.code == 2 and msg in got, got

    with pytest.raises(SystemExit) as e:
        main(["eval", "calibrate", str(ds), "--quiet"])
    cap = capsys.readouterr()
    got = " ".join((cap.out + cap.err).split())
    assert e.value.code == 2 and "--bfm-template" in got


def test_landmarks_model_projects_to_what_build_returns():
    """The calibration's decode (Reconstructor.landmarks_model + point_jacobians) and the pipeline's
    (Reconstructor.build) put the 68 points at the same crop pixels, scoring rules included."""
    pytest.importorskip("torch")
    from recon_cli.backends import load_backend
    from recon_cli.eval.contour import HiddenContour
    from recon_cli.eval.predictors import default_weights
    from recon_cli.morphable import load_default_model
    from recon_cli.pipeline.reconstruct import Reconstructor

    w = default_weights()
    if w is None:
        pytest.skip("no shipped weights")
    model = load_default_model()
    rng = np.random.default_rng(0)
    inner = rng.normal(0, 0.003, (68, 3))
    contour = HiddenContour(offsets=np.zeros((68, 3)), normals=np.zeros((68, 3)), inner=inner)
    rec = Reconstructor(load_backend(w), model, contour=contour)
    coeffs = rng.normal(0, 0.3, (3, rec.layout.total)).astype(np.float32)
    coeffs[:, rec.layout.slices["angles"]] = rng.uniform(-0.8, 0.8, (3, 3))
    coeffs[:, rec.layout.slices["trans"]] = rng.uniform(-0.02, 0.02, (3, 3))
    lm, R, t = rec.landmarks_model(coeffs)
    uv, _ = ac.point_jacobians(lm, R, t, rec.cam)
    M = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    for i, r in enumerate(rec.build(coeffs, np.stack([M] * 3), dense=False)):
        np.testing.assert_allclose(uv[i], r.lm68_crop, atol=1e-3)
    rec.contour = None  # and the rules do move the points
    lm0, _, _ = rec.landmarks_model(coeffs)
    np.testing.assert_allclose(lm - lm0, np.broadcast_to(inner, lm.shape), atol=1e-9)


def test_teacher_inner_jacobian_matches_a_moved_gap():
    """MediaPipe's path (TeacherInner.points_and_jacobian): moving the gap by δ moves the scored points
    by J·δ exactly, on a mesh that is a turned, scaled copy of the canonical face."""
    from recon_cli.eval.contour import TeacherInner
    from recon_cli.render.camera import euler_to_rotation

    rng = np.random.default_rng(3)
    canonical = rng.normal(0, 5.0, (468, 3))  # cm
    gap = rng.normal(0, 0.3, (68, 3))
    R = euler_to_rotation(np.array([[0.2, 0.7, -0.1]]))[0]
    mesh = (2.5 * canonical @ R.T + np.array([300.0, 200.0, 0.0])) * np.array([1.0, -1.0, -1.0])  # image px, y down
    ti = TeacherInner(canonical=canonical, gap=gap)
    uv, J = ti.points_and_jacobian(mesh)
    np.testing.assert_allclose(uv, ti.points68(mesh))
    delta = rng.normal(0, 0.5, (68, 3))
    moved = TeacherInner(canonical=canonical, gap=gap + delta).points68(mesh)
    np.testing.assert_allclose(moved - uv, delta @ J.T, atol=1e-6)
    assert np.abs(J).max() > 1.0  # 2.5 px per cm, turned


def test_the_shipped_calibrations_belong_to_the_shipped_predictors():
    """Shipping new default weights without fitting their calibration would make `recon eval
    aflw2000` refuse the stale file: caught here first (fix: `recon eval calibrate`, README)."""
    from recon_cli.paths import WEIGHTS_DIR

    w = WEIGHTS_DIR / "default.pt"
    if not w.is_file():
        pytest.skip("no shipped weights")
    cal = ac.Calibration.load(ac.beside(w))
    cal.check(w, {"contour": "bfm", "inner": "bfm"})
    assert cal.info["split"]["name"] == "val" and cal.info["faces"] >= 300
    mp = ac.Calibration.load(WEIGHTS_DIR / ac.MEDIAPIPE_NAME)
    mp.check(None, {"contour": "bfm-spacing", "inner": "bfm"})
    # the model-space offsets are millimetres, not metres: nothing beyond 3 cm
    assert 1e-4 < np.abs(cal.offsets).max() < 0.03 and 1e-4 < np.abs(mp.offsets).max() < 0.03
