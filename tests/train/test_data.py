"""Training data: dataset samples from a real prepared dataset, split, resumable sampler, bad data."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest
import torch

from recon_cli.errors import InputError
from tests.train.tiny_dataset import copy_dataset, tiny_dataset
from train.data import (FaceDataset, ResumableBatchSampler, collate_skip_bad, load_entries, split_ids, yaw_bin,
                        yaw_bin_weights)


@pytest.fixture(scope="session")
def tiny(shared_data, tmp_path_factory):
    return tiny_dataset(shared_data, tmp_path_factory.mktemp("h5data"))


# ------------------------------------------------------------------------------------ split
def test_split_is_deterministic_and_order_independent():
    ids = [f"img{i:04d}" for i in range(2000)]
    tr, va = split_ids(ids, 0.1, seed=3)
    assert sorted(tr + va) == list(range(2000)) and not set(tr) & set(va)
    assert 150 < len(va) < 250  # ~10 %
    rev = ids[::-1]
    tr2, va2 = split_ids(rev, 0.1, seed=3)
    assert {rev[i] for i in va2} == {ids[i] for i in va}  # a sample's side depends only on its id
    assert {ids[i] for i in split_ids(ids, 0.1, seed=4)[1]} != {ids[i] for i in va}
    assert split_ids(ids[:5], 0.0)[1] == []
    assert len(split_ids(ids[:3], 0.01)[1]) == 1  # tiny sets still hold one out


# ------------------------------------------------------------------------------------ sampler
def test_sampler_epochs_are_seeded_permutations():
    s = ResumableBatchSampler(list(range(10, 30)), batch_size=4, seed=7)
    e0, e1 = s.epoch_batches(0), s.epoch_batches(1)
    assert len(s) == 5 and all(len(b) == 4 for b in e0)
    assert sorted(sum(e0, [])) == list(range(10, 30)) and e0 != e1
    assert ResumableBatchSampler(list(range(10, 30)), 4, seed=7).epoch_batches(1) == e1


def test_sampler_resumes_mid_epoch():
    s = ResumableBatchSampler(list(range(23)), batch_size=5, seed=1)  # drop_last: 4 batches
    full = list(s)
    assert len(full) == 4
    s.state.batch = 2
    assert list(s) == full[2:]
    s.state.epoch, s.state.batch = 3, 1
    assert list(s) == s.epoch_batches(3)[1:]


def test_sampler_shards_ranks_evenly():
    idx = list(range(11))
    shards = [ResumableBatchSampler(idx, 2, seed=0, rank=r, world=3, drop_last=False) for r in range(3)]
    assert len({len(s) for s in shards}) == 1  # every rank the same number of batches
    items = [sum(s.epoch_batches(0), []) for s in shards]
    assert set(sum(items, [])) == set(idx)  # the union covers every sample (one padded repeat)
    assert sum(len(i) for i in items) == 12


def test_sampler_keeps_partial_batch_of_tiny_sets():
    s = ResumableBatchSampler([1, 2, 3], batch_size=8, seed=0)
    assert len(s) == 1 and sorted(list(s)[0]) == [1, 2, 3]
    with pytest.raises(InputError):
        ResumableBatchSampler([], 4)


def test_yaw_bins_follow_the_aflw2000_protocol():
    assert [yaw_bin(v) for v in (0.0, -29.9, 30.1, 59.9, -60.1, 95.0)] == [0, 0, 1, 1, 2, 2]
    assert yaw_bin(30.0) == 0 and yaw_bin(-60.0) == 1  # the evaluation's edges: ≤ 30, (30, 60], > 60
    assert yaw_bin(None) == -1 and yaw_bin(float("nan")) == -1


def _yaw_entries(yaws):
    return [{"extra": {} if y is None else {"yaw_deg": y}} for y in yaws]


def test_yaw_bin_weights_balance_the_bins():
    # 60 frontal, 30 half-profile, 10 profile faces and 5 without a label
    ents = _yaw_entries([5.0] * 60 + [-40.0] * 30 + [75.0] * 10 + [None] * 5)
    idx = list(range(len(ents)))
    assert yaw_bin_weights(ents, idx, 0.0) is None
    assert yaw_bin_weights(_yaw_entries([None] * 4), list(range(4)), 1.0) is None
    w = yaw_bin_weights(ents, idx, 1.0)
    assert w.shape == (105,) and np.allclose(w[100:], 1.0)  # unlabelled faces keep weight 1
    assert np.mean(w[:100]) == pytest.approx(1.0)
    share = [w[a:b].sum() for a, b in ((0, 60), (60, 90), (90, 100))]
    np.testing.assert_allclose(share, [share[0]] * 3)  # α = 1: the three bins equally likely
    h = yaw_bin_weights(ents, idx, 0.5)
    assert h[90] / h[0] == pytest.approx(np.sqrt(6.0))  # (0.1 / 0.6)^−0.5
    # only the listed indices count
    w2 = yaw_bin_weights(ents, list(range(60, 100)), 1.0)
    np.testing.assert_allclose([w2[:30].sum(), w2[30:].sum()], [20.0, 20.0])


def test_weighted_sampler_draws_by_weight_and_resumes():
    idx = list(range(100))
    w = np.where(np.arange(100) < 10, 9.0, 1.0)  # the first 10 are half of the mass
    s = ResumableBatchSampler(idx, batch_size=10, seed=3, weights=w)
    assert len(s) == 10
    drawn = np.concatenate([sum(s.epoch_batches(e), []) for e in range(40)])
    assert abs(np.mean(drawn < 10) - 0.5) < 0.03
    assert ResumableBatchSampler(idx, 10, seed=3, weights=w).epoch_batches(2) == s.epoch_batches(2)
    assert s.epoch_batches(1) != s.epoch_batches(2)
    full = list(s)
    s.state.batch = 4
    assert list(s) == full[4:]
    for bad in (np.ones(99), -np.ones(100), np.zeros(100)):
        with pytest.raises(ValueError, match="sampler weights"):
            ResumableBatchSampler(idx, 10, weights=bad)


# ------------------------------------------------------------------------------------ dataset
def test_dataset_sample_fields(tiny):
    header, entries = load_entries(tiny)
    ds = FaceDataset(tiny, entries, size=64, label_weights=(1.0, 1.5, 1.5, 1.2))
    s = ds[0]
    assert s["image"].shape == (3, 64, 64) and s["image"].dtype == torch.float32
    assert 0.0 <= float(s["image"].min()) and float(s["image"].max()) <= 1.0
    assert s["face_mask"].shape == (1, 64, 64) and set(s["face_mask"].unique().tolist()) <= {0.0, 1.0}
    assert set(np.round(s["region_weight"].unique().double().numpy(), 4).tolist()) <= {0.0, 1.0, 1.5, 1.2}
    assert bool(((s["region_weight"] > 0) == (s["face_mask"] > 0)).all())
    # landmarks scaled from the dataset's 224 crop to 64
    lm224 = np.asarray(entries[0]["lm68"], np.float32)
    np.testing.assert_allclose(s["lm68"].numpy(), lm224 * 64 / header["size"], rtol=1e-5)
    assert s["pts21"].shape == (21, 2) and torch.isnan(s["pts21"]).all()  # no manual labels here
    # the landmarks lie on the face area of the mask
    x, y = s["lm68"][30].long().tolist()  # nose tip
    assert float(s["face_mask"][0, y, x]) == 1.0
    b = collate_skip_bad([ds[0], ds[1]])
    assert b["image"].shape == (2, 3, 64, 64) and b["lm68"].shape == (2, 68, 2) and b["n_bad"] == 0


def test_bad_samples_are_reported_and_dropped(tiny, tmp_path, caplog):
    d = copy_dataset(tiny, tmp_path / "bad")
    lines = (d / "manifest.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    (d / recs[0]["crop"]).write_bytes(b"\xff\xd8 not a jpeg")  # corrupt crop
    (d / recs[1]["mask"]).unlink()  # missing mask
    recs[2]["lm68"][5] = [float("nan"), 3.0]  # NaN landmark
    cv2.imwrite(str(d / recs[3]["mask"]), np.full((224, 224), 9, np.uint8))  # label out of range
    (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    _, entries = load_entries(d)
    ds = FaceDataset(d, entries, size=64)
    with caplog.at_level(logging.WARNING, logger="recon.train.data"):
        got = [ds[i] for i in range(5)]
    assert got[:4] == [None] * 4 and got[4] is not None
    text = caplog.text
    assert recs[0]["crop"] in text and recs[1]["mask"] in text and "lm68" in text and "label 9" in text
    assert ds.n_bad == 4
    b = collate_skip_bad(got)
    assert b["image"].shape[0] == 1 and b["n_bad"] == 4
    assert collate_skip_bad(got[:4]) is None


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_entries(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="recon prep"):
        load_entries(tmp_path / "empty")


# ------------------------------------------------------------------------------------ teacher gate, yaw label
def test_teacher_gate_drops_68_points_that_miss_the_manual_labels(tiny):
    """``data.lm68_max_disagree``: a face whose detected 68 points miss its visible manual labels by
    more than the threshold (px at 224, the crop's size here) loses its wing-loss weight."""
    import copy

    from train.data import teacher_disagreement
    from train.pts21 import USED, weights_21x68

    _, entries = load_entries(tiny)
    e = copy.deepcopy(entries[0])
    lm = np.asarray(e["lm68"], np.float64)
    src = cv2.imread(str(e["crop"])).shape[0]
    agree = weights_21x68().astype(np.float64) @ lm
    agree[~USED] = np.nan
    far = agree + 12.0 * src / 224 / np.sqrt(2)  # 12 px at 224 along the diagonal
    few = far.copy()
    few[np.flatnonzero(USED)[2:]] = np.nan  # only two visible: the gate cannot judge
    assert teacher_disagreement(lm, agree) == pytest.approx(0.0, abs=1e-9)
    assert teacher_disagreement(lm, far) == pytest.approx(12.0 * src / 224)
    assert teacher_disagreement(lm, few) is None
    weights = {}
    for name, p21 in (("agree", agree), ("far", far), ("few", few)):
        ent = copy.deepcopy(e)
        ent["extra"]["pts21"] = [[None if not np.isfinite(v) else float(v) for v in row] for row in p21]
        for thr in (0.0, 8.0, 16.0):
            weights[name, thr] = float(FaceDataset(tiny, [ent], 64, lm68_max_disagree=thr)[0]["lm68_weight"].sum())
    assert weights["far", 8.0] == 0.0  # 12 px > 8 px: dropped
    assert weights["far", 0.0] == weights["far", 16.0] == 68.0  # off, or within the threshold
    assert weights["agree", 8.0] == weights["few", 8.0] == 68.0


def test_yaw_label_is_in_the_model_convention_and_mirrors(tiny):
    import copy

    from train.augment import AugmentSettings

    _, entries = load_entries(tiny)
    e = copy.deepcopy(entries[0])
    assert torch.isnan(FaceDataset(tiny, [e], 64)[0]["yaw"])  # no label
    e["extra"]["yaw_deg"] = 30.0  # AFLW: face turned to the image's left
    assert float(FaceDataset(tiny, [e], 64)[0]["yaw"]) == pytest.approx(-np.radians(30.0))
    mirror = FaceDataset(tiny, [e], 64, augment=AugmentSettings(shift=0, scale=0, rotate=0, flip=1.0))
    assert float(mirror[(0, 0)]["yaw"]) == pytest.approx(np.radians(30.0))
    batch = collate_skip_bad([FaceDataset(tiny, [e], 64)[0], None, mirror[(0, 1)]])
    assert batch["yaw"].shape == (2,) and batch["yaw"].tolist() == pytest.approx([-np.radians(30), np.radians(30)])
