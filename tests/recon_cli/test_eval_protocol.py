"""AFLW2000-3D protocol: NME of known perturbations, bin edges, balanced mean, the data files."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recon_cli.errors import InputError
from recon_cli.eval.aflw2000_data import Aflw2000, load_mat
from recon_cli.eval.crops import (apply_affine, gt_box_transform, roi_box_from_landmarks, square_landmark_box,
                                  virtual_five_points)
from recon_cli.eval.nme import REGIONS, bbox_size, nme, region_nme, region_summary, summarise, yaw_bin


def _gt(seed=0, w=120.0, h=150.0):
    """68 random points spanning exactly a w × h box at (200, 100)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, (2, 68))
    p[:, 0], p[:, 1] = 0, 1  # pin the extremes so the box is exactly w × h
    p[0] = 200 + p[0] * w
    p[1] = 100 + p[1] * h
    return p


def test_uniform_shift_of_one_percent_gives_exactly_one_percent():
    gt = _gt()
    d = 0.01 * math.sqrt(120 * 150)
    for angle in (0.0, 0.7, 2.0):  # every point moved by d in the same direction
        pred = gt + d * np.array([[math.cos(angle)], [math.sin(angle)]])
        assert nme(pred, gt) * 100 == pytest.approx(1.0, abs=1e-12)


def test_region_nme_localises_the_error_and_averages_to_the_image_nme():
    gt = _gt(3)
    d = 0.02 * math.sqrt(120 * 150)
    pred = gt.copy()
    pred[1, 17:27] -= d  # brows 2 % too high, nothing else moved
    r = region_nme(pred, gt)
    assert r["brows"] * 100 == pytest.approx(2.0, abs=1e-12)
    assert all(r[k] == 0.0 for k in REGIONS if k != "brows")
    pred = gt + np.random.default_rng(4).normal(0, 3, gt.shape)
    r = region_nme(pred, gt)
    counts = {k: b - a for k, (a, b) in REGIONS.items()}
    assert sum(counts.values()) == 68
    assert sum(r[k] * counts[k] for k in REGIONS) / 68 == pytest.approx(nme(pred, gt), rel=1e-12)


def test_region_summary_bins_and_balanced_mean():
    per = [{k: 0.01 * (i + 1) for k in REGIONS} for i in range(3)]  # image i: i+1 % everywhere
    s = region_summary(per, np.array([10.0, 45.0, -80.0]))
    assert s["jaw"] == pytest.approx([1.0, 2.0, 3.0, 2.0])
    s = region_summary(per[:1], np.array([10.0]))
    assert s["eyes"][0] == pytest.approx(1.0) and s["eyes"][1] is None and s["eyes"][3] is None


def test_scaling_about_the_box_centre():
    gt = _gt(1)
    c = np.array([[gt[0].min() + gt[0].max()], [gt[1].min() + gt[1].max()]]) / 2
    pred = c + 1.1 * (gt - c)  # each point moves by 0.1·|p − c|
    expect = 0.1 * np.linalg.norm(gt - c, axis=0).mean() / bbox_size(gt)
    assert nme(pred, gt) == pytest.approx(expect, rel=1e-12)


def test_nme_uses_gt_box_only_and_xy_only():
    gt = _gt(2)
    pred = gt.copy()
    pred[:, 5] += [3.0, 4.0]  # one point off by 5 px
    expect = 5.0 / 68 / math.sqrt(120 * 150)
    assert nme(pred, gt) == pytest.approx(expect, rel=1e-12)
    gt3 = np.vstack([gt, np.full((1, 68), 1e6)])  # depth row ignored
    assert nme(pred, gt3) == pytest.approx(expect, rel=1e-12)
    assert nme(pred.T, gt) == pytest.approx(expect, rel=1e-12)  # (68, 2) accepted
    assert nme(gt, gt) == 0.0


def test_nme_rejects_degenerate_box():
    gt = _gt()
    gt[1] = 5.0
    with pytest.raises(ValueError, match="degenerate"):
        nme(gt, gt)


def test_bin_edges_follow_3ddfa():
    yaws = np.array([0, 29.999, 30.0, -30.0, 30.0001, 59.9, 60.0, -60.0, 60.0001, -89.0, 100.0])
    assert yaw_bin(yaws).tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2]


def test_balanced_mean_is_mean_of_bin_means():
    yaws = np.array([0, 10, 20, 45, 70])
    nmes = np.array([0.01, 0.02, 0.03, 0.05, 0.10])
    s = summarise(nmes, yaws)
    assert s.bin_count == [3, 1, 1]
    assert s.bin_mean == pytest.approx([2.0, 5.0, 10.0])
    assert s.balanced_mean == pytest.approx(17.0 / 3)
    assert s.plain_mean == pytest.approx(4.2)
    assert s.balanced_std == pytest.approx(np.std([2.0, 5.0, 10.0]))
    empty = summarise(np.array([0.01]), np.array([5.0]))
    assert math.isnan(empty.bin_mean[1]) and math.isnan(empty.balanced_mean)
    assert empty.to_dict()["balanced_mean"] is None  # JSON-safe


def test_roi_box_is_3ddfa_square_box():
    gt = _gt(3)
    x0, y0, x1, y1 = roi_box_from_landmarks(gt)
    assert x1 - x0 == pytest.approx(math.sqrt(2) * 150) and y1 - y0 == pytest.approx(math.sqrt(2) * 150)
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((260.0, 175.0))


def test_gt_box_transform_maps_box_onto_target_and_virtual_points_reproduce_it():
    gt = _gt(4)
    box = (112.0, 120.0, 150.0)
    m = gt_box_transform(gt, box)
    cx, cy, side = square_landmark_box(apply_affine(m, gt.T).T)
    assert (cx, cy, side) == pytest.approx(box)
    target5 = np.array([[80.0, 100], [144, 100], [112, 130], [88, 160], [136, 160]])
    src5 = virtual_five_points(gt, target5, box)
    # the least-squares similarity src5 → target5 (what an aligner fits) is m itself
    import cv2

    fit, _ = cv2.estimateAffinePartial2D(src5.astype(np.float32), target5.astype(np.float32), method=cv2.LMEDS)
    assert fit == pytest.approx(m, abs=1e-3)


def test_published_rows_are_consistent():
    from recon_cli.eval.output import load_published

    rows = load_published()
    names = [r["method"] for r in rows]
    for want in ("3DDFA", "PRNet", "3DDFA-V2", "MGCNet", "SADRNet"):
        assert want in names
    paper = rows[names.index("Paper (spatial + frequency)")]
    assert paper["bins"] == [2.42, 3.25, 4.78] and paper["mean"] == 3.48
    for r in rows:
        assert len(r["bins"]) == 3 and r["citation"]
        assert r["mean"] == pytest.approx(sum(r["bins"]) / 3, abs=0.006), r["method"]


# ---------------------------------------------------------------- the real files (shared half)
@pytest.fixture(scope="module")
def aflw(shared_data):
    return Aflw2000(shared_data / "aflw2000-3d")


def test_bin_counts_on_shared_half(aflw, shared_data):
    """The shared half holds 1,000 of the 2,000 images; the AFLW-label yaws split them 663/218/119
    (Pose_Para would give 670/182/148, which is why the labels file is preferred)."""
    assert len(aflw) == 1000 and aflw.yaw_source == "aflw-labels"
    yaws = np.array([aflw.sample(n).yaw_deg for n in aflw.names])
    assert np.bincount(yaw_bin(yaws)).tolist() == [663, 218, 119]
    # cross-check: the yaws are the .pose.npy rows, looked up by name through the .list
    root = shared_data / "aflw2000-3d"
    order = (root / "AFLW2000-3D.list").read_text().split()
    pose = np.load(root / "AFLW2000-3D-new.pose.npy")
    by_name = dict(zip(order, pose))
    assert np.allclose(yaws, [by_name[n] for n in aflw.names])
    pp = np.array([aflw.sample(n).pose_para_yaw_deg for n in aflw.names])
    assert np.bincount(yaw_bin(pp)).tolist() == [670, 182, 148]


def test_landmark_sets(aflw, shared_data):
    s = aflw.sample("image00004.jpg")
    m = load_mat(shared_data / "aflw2000-3d" / "image00004.mat")
    assert np.array_equal(s.gt68, m["pt3d_68"][:2])
    re_ = Aflw2000(shared_data / "aflw2000-3d", landmarks="reannotated").sample("image00004.jpg")
    assert re_.gt68.shape == (2, 68)
    assert 0 < np.abs(re_.gt68 - s.gt68).mean() < 0.2 * bbox_size(s.gt68)  # same face, re-annotated


def test_yaw_from_pose_para_without_label_files(tmp_path, shared_data):
    import shutil

    for n in ("image00004", "image00008"):
        for ext in (".jpg", ".mat"):
            shutil.copy(shared_data / "aflw2000-3d" / f"{n}{ext}", tmp_path / f"{n}{ext}")
    ds = Aflw2000(tmp_path)
    assert ds.yaw_source == "pose_para"
    s = ds.sample("image00004.jpg")
    assert s.yaw_deg == pytest.approx(math.degrees(1.1895334), abs=1e-4)
    with pytest.raises(InputError, match="reannotated"):
        Aflw2000(tmp_path, landmarks="reannotated")


def test_malformed_mat_is_a_clear_error(tmp_path, shared_data):
    import shutil

    shutil.copy(shared_data / "aflw2000-3d" / "image00004.jpg", tmp_path / "image00004.jpg")
    (tmp_path / "image00004.mat").write_bytes(b"this is not a mat file")
    ds = Aflw2000(tmp_path)
    with pytest.raises(InputError, match=r"image00004\.mat: not a readable MATLAB"):
        ds.sample("image00004.jpg")
    import scipy.io

    scipy.io.savemat(tmp_path / "image00004.mat", {"pt3d_68": np.zeros((3, 21)), "Pose_Para": np.zeros((1, 7))})
    with pytest.raises(InputError, match="3×68"):
        ds.sample("image00004.jpg")
    scipy.io.savemat(tmp_path / "image00004.mat", {"pt2d": np.zeros((2, 21))})
    with pytest.raises(InputError, match="missing variable 'pt3d_68'"):
        ds.sample("image00004.jpg")


def test_folder_errors(tmp_path, shared_data):
    with pytest.raises(InputError, match="not found"):
        Aflw2000(tmp_path / "nope")
    with pytest.raises(InputError, match="no imageXXXXX.jpg"):
        Aflw2000(tmp_path)
    import shutil

    shutil.copy(shared_data / "aflw2000-3d" / "image00004.jpg", tmp_path / "image00004.jpg")
    with pytest.raises(InputError, match="without a .mat"):
        Aflw2000(tmp_path)
    shutil.copy(shared_data / "aflw2000-3d" / "image00004.mat", tmp_path / "image00004.mat")
    np.save(tmp_path / "AFLW2000-3D-new.pose.npy", np.zeros(3))
    with pytest.raises(InputError, match="AFLW2000-3D.list"):
        Aflw2000(tmp_path)
    (tmp_path / "AFLW2000-3D.list").write_text("image00004.jpg\nimage00005.jpg\n")
    with pytest.raises(InputError, match=r"expected shape \(2,\)"):
        Aflw2000(tmp_path)
    (tmp_path / "AFLW2000-3D.list").write_text("image00005.jpg\nimage00006.jpg\nimage00007.jpg\n")
    with pytest.raises(InputError, match="not listed"):
        Aflw2000(tmp_path)
