"""`recon eval aflw2000` end to end on the real shared half (MediaPipe baseline, no encoder)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from recon_cli.cli.app import main
from recon_cli.eval.nme import yaw_bin


def _run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out + out.err


@pytest.mark.data
def test_mediapipe_limit20_both_crops_writes_json_csv_report(shared_data, tmp_path, capsys):
    data = shared_data / "aflw2000-3d"
    code, out = _run(["eval", "aflw2000", "--data", str(data), "--method", "mediapipe", "--crop", "both",
                      "--limit", "20", "--quiet", "--json", str(tmp_path / "r.json"), "--csv", str(tmp_path / "r.csv"),
                      "--report", str(tmp_path / "rep"), "--save-points", str(tmp_path / "pts.npz"), "--by-region"],
                     capsys)
    assert code in (0, None), out
    assert "published" in out and "mediapipe (crop detector" in out and "mediapipe (crop gt" in out
    payload = json.loads((tmp_path / "r.json").read_text())
    assert [r["settings"]["crop"] for r in payload["runs"]] == ["detector", "gt"]
    assert {r["method"] for r in payload["published"]} >= {"3DDFA", "PRNet", "3DDFA-V2", "MGCNet", "SADRNet"}
    for run in payload["runs"]:
        s, rows = run["summary"], run["per_image"]
        assert run["settings"]["yaw_source"] == "aflw-labels" and run["settings"]["limit"] == 20
        assert s["n"] == len(rows) == 20
        nmes = np.array([r["nme_pct"] for r in rows])
        bins = yaw_bin([r["yaw_deg"] for r in rows])
        assert s["bin_count"] == np.bincount(bins, minlength=3).tolist()
        assert s["plain_mean"] == pytest.approx(nmes.mean())
        # MediaPipe is a real landmark model: frontal faces well under 10 % NME, every value finite
        assert np.isfinite(nmes).all() and s["bin_mean"][0] < 6.0
        assert run["timing"]["images_per_s"] > 0
    det, gt = payload["runs"]
    assert det["detector"]["misses"] == sum(r["detector_hit"] is False for r in det["per_image"])
    assert sum(det["detector"]["miss_reasons"].values()) == det["detector"]["misses"]
    assert all(r["detector_hit"] is None and r["crop_used"] == "gt" for r in gt["per_image"])
    with open(tmp_path / "r.detector.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 20 and set(rows[0]) == {"name", "yaw_deg", "bin", "bin_label", "nme_pct", "detector_hit", "crop_used"}
    assert float(rows[0]["nme_pct"]) == pytest.approx(det["per_image"][0]["nme_pct"], abs=1e-4)
    # --by-region: the table is printed and the JSON carries it; per-region values match the points
    assert "by landmark region" in out and "brows" in out
    pts = np.load(tmp_path / "pts.detector.npz")
    assert pts["pred68"].shape == pts["gt68"].shape == (20, 2, 68) and list(pts["names"]) == [r["name"] for r in det["per_image"]]
    from recon_cli.eval.nme import nme, region_nme, region_summary

    assert [100 * nme(p, g) for p, g in zip(pts["pred68"], pts["gt68"])] == pytest.approx([r["nme_pct"] for r in det["per_image"]])
    expect = region_summary([region_nme(p, g) for p, g in zip(pts["pred68"], pts["gt68"])], pts["yaw_deg"])
    assert det["regions"] == {k: pytest.approx(v) for k, v in expect.items()}
    assert set(np.load(tmp_path / "pts.gt.npz")["crop_used"]) == {"gt"}
    assert det["pose"] is None and np.isnan(pts["yaw_pred_deg"]).all()  # MediaPipe's mapped points carry no pose
    import cv2

    grid = cv2.imread(str(tmp_path / "rep" / "worst_gt.png"))
    assert grid is not None and grid.shape[1] == 6 * 256
    # the default scores the inner points in the BFM convention, like --method recon; --inner model
    # scores MediaPipe's mapped points as they are (and leaves the calibration fitted on top of the
    # BFM convention out): the jaw is the same, the inner points differ
    assert det["settings"]["inner"]["rule"] == "bfm" and "BFM inner" in out
    code, out = _run(["eval", "aflw2000", "--data", str(data), "--method", "mediapipe", "--limit", "20", "--quiet",
                      "--inner", "model", "--save-points", str(tmp_path / "raw.npz"), "--json", str(tmp_path / "m.json")],
                     capsys)
    assert code in (0, None), out
    assert json.loads((tmp_path / "m.json").read_text())["runs"][0]["settings"]["inner"]["rule"] == "model"
    raw = np.load(tmp_path / "raw.npz")["pred68"]
    jaw = [j for j in range(17) if j != 8]  # the chin (8) is one of the points the AFLW calibration moves
    np.testing.assert_allclose(raw[:, :, jaw], pts["pred68"][:, :, jaw], atol=1e-3)
    assert det["settings"]["aflw21_calib"]["file"].endswith("mediapipe.aflw21.json")
    assert json.loads((tmp_path / "m.json").read_text())["runs"][0]["settings"]["aflw21_calib"] is None  # other rules
    assert np.abs(raw[:, :, 17:] - pts["pred68"][:, :, 17:]).max() > 1.0


def test_recon_without_weights_says_none_are_shipped(shared_data, capsys, tmp_path, monkeypatch):
    import recon_cli.paths

    monkeypatch.setattr(recon_cli.paths, "WEIGHTS_DIR", tmp_path / "no-weights")
    code, out = _run(["eval", "aflw2000", "--data", str(shared_data / "aflw2000-3d"), "--limit", "1"], capsys)
    assert code == 2
    assert "none are shipped yet" in out and "--weights" in out
    assert "Traceback" not in out


def test_missing_folder_and_bad_mat_are_clear_errors(tmp_path, capsys, shared_data):
    code, out = _run(["eval", "aflw2000", "--data", str(tmp_path / "absent"), "--method", "mediapipe"], capsys)
    assert code == 2 and "AFLW2000-3D folder not found" in out and "Traceback" not in out
    import shutil

    shutil.copy(shared_data / "aflw2000-3d" / "image00004.jpg", tmp_path / "image00004.jpg")
    (tmp_path / "image00004.mat").write_bytes(b"\x00garbage")
    # a folder with no BFM template beside it: the default (inner points in the BFM convention) says how to go on
    code, out = _run(["eval", "aflw2000", "--data", str(tmp_path), "--method", "mediapipe", "--quiet"], capsys)
    msg = " ".join(out.split())
    assert code == 2 and "BFM landmark template not found" in msg and "--inner model" in msg and "Traceback" not in out
    code, out = _run(["eval", "aflw2000", "--data", str(tmp_path), "--method", "mediapipe", "--quiet", "--inner", "model",
                      "--contour", "model", "--json", str(tmp_path / "r.json")], capsys)
    assert code == 2 and "image00004.mat" in out and "Traceback" not in out
    assert not (tmp_path / "r.json").exists()
