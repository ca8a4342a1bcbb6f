"""Augmentation (train.augment) and the AFLW 21-point mapping (train.pts21): transforms move
pixels and points together, mirrors renumber landmarks, draws are deterministic per (sample, epoch)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from train.augment import FLIP68, AugmentSettings, apply, random_transform
from train.pts21 import FLIP21, USED, mask_unused, project21, weights_21x68
from train.step import pts21_error


def test_mirror_orders_are_involutions_that_swap_sides():
    for perm, n in ((FLIP68, 68), (FLIP21, 21)):
        assert sorted(perm.tolist()) == list(range(n))
        assert (perm[perm] == np.arange(n)).all()
    # iBUG: jaw ends, eye outer corners, mouth corners swap; nose tip, chin stay
    assert FLIP68[0] == 16 and FLIP68[36] == 45 and FLIP68[39] == 42 and FLIP68[48] == 54
    assert FLIP68[30] == 30 and FLIP68[8] == 8 and FLIP68[57] == 57 and FLIP68[66] == 66
    # AFLW: eye outer corners 7 ↔ 12, mouth corners 18 ↔ 20, chin 21 stays (0-based below)
    assert FLIP21[6] == 11 and FLIP21[17] == 19 and FLIP21[20] == 20


@pytest.mark.parametrize("flip", [False, True])
def test_points_follow_the_pixels(flip):
    """A bright pixel at a landmark's position lands where the transformed landmark says."""
    size = 96
    rng = np.random.default_rng(3)
    M, _ = random_transform(rng, size, AugmentSettings(shift=8, scale=0.1, rotate=10, flip=0.0))
    if flip:
        M = np.array([[-1.0, 0.0, size], [0.0, 1.0, 0.0]]) @ np.vstack([M, [0, 0, 1]])
    pts = np.full((68, 2), 48.0)
    pts[36] = (30.5, 40.5)  # centre of pixel (30, 40)
    img = np.zeros((size, size, 3), np.uint8)
    img[40, 30] = 255
    labels = np.zeros((size, size), np.uint8)
    labels[40, 30] = 2
    out_img, out_lab, out = apply(img, labels, {"lm68": pts}, M, flip)
    q = out["lm68"][FLIP68[36] if flip else 36]
    y, x = np.unravel_index(np.argmax(out_img[..., 0].astype(float)), out_img.shape[:2])
    assert math.hypot(x + 0.5 - q[0], y + 0.5 - q[1]) < 1.0
    ly, lx = np.argwhere(out_lab == 2)[0]
    assert math.hypot(lx + 0.5 - q[0], ly + 0.5 - q[1]) < 1.0 and set(np.unique(out_lab)) <= {0, 2}


def test_transform_ranges_and_off_switch():
    rng = np.random.default_rng(0)
    s = AugmentSettings(shift=10, scale=0.1, rotate=10, flip=0.5)
    flips = 0
    for _ in range(200):
        M, f = random_transform(rng, 224, s)
        k = math.sqrt(abs(np.linalg.det(M[:, :2])))
        assert 0.9 - 1e-9 <= k <= 1.1 + 1e-9
        centre = M @ [112.0, 112.0, 1.0]
        if not f:
            assert np.abs(centre - 112.0).max() <= 10.0 + 1e-6
            assert abs(math.degrees(math.atan2(M[1, 0], M[0, 0]))) <= 10.0 + 1e-6
        flips += f
    assert 60 < flips < 140
    assert not AugmentSettings(0, 0, 0, 0).active


def test_pts21_mapping_uses_eleven_points_as_convex_combinations():
    w = weights_21x68()
    assert USED.sum() == 11 and np.allclose(w[USED].sum(1), 1.0) and (w[~USED] == 0).all() and (w >= 0).all()
    lm = torch.rand(2, 68, 2) * 100
    p = project21(lm)
    assert torch.allclose(p[:, 6], lm[:, 36]) and torch.allclose(p[:, 20], lm[:, 8])
    assert torch.allclose(p[:, 14], (2 * lm[:, 30] + lm[:, 33]) / 3)
    # the mirror of the mapping is the mapping of the mirror
    assert torch.allclose(project21(lm[:, FLIP68])[:, FLIP21][:, USED], p[:, USED], atol=1e-5)


def test_pts21_error_ignores_invisible_and_unused_points():
    target = torch.full((2, 21, 2), float("nan"))
    target[0, 6] = torch.tensor([10.0, 10.0])
    target[0, 0] = torch.tensor([0.0, 0.0])  # a brow point: unused, must not count
    pred = torch.zeros(2, 21, 2)
    err, has = pts21_error(pred, target, size=112)
    assert has.tolist() == [True, False]
    assert err[0].item() == pytest.approx(math.hypot(10, 10) * 2)  # px at 224
    assert torch.isnan(mask_unused(target)[0, 0]).all()


def test_dataset_draws_are_deterministic_per_epoch(shared_data, tmp_path):
    from tests.train.tiny_dataset import tiny_dataset
    from train.data import FaceDataset, load_entries

    root = tiny_dataset(shared_data, tmp_path)
    _, entries = load_entries(root)
    ds = FaceDataset(root, entries, 64, augment=AugmentSettings(), seed=1)
    a, b, c = ds[(0, 0)], ds[(0, 0)], ds[(0, 1)]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["lm68"], b["lm68"])
    assert not torch.equal(a["lm68"], c["lm68"])
    plain = ds[0]  # validation path: no augmentation
    assert torch.equal(plain["image"], FaceDataset(root, entries, 64)[0]["image"])
