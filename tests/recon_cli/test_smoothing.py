"""One-Euro filter and per-face smoothing on synthetic noisy signals."""

from __future__ import annotations

import numpy as np
import pytest

from recon_cli.coeffs import CoeffLayout
from recon_cli.pipeline.smoothing import (EuroParams, FaceSmoother, FaceTracker, OneEuroFilter, SmoothingConfig,
                                          similarity_matrix, similarity_params)

FPS = 30.0


def _head_turn(noise, amp, seed=0):
    """Still (0.1) for 2 s, a smooth 0.5 s turn of ``amp``, still again; 30 fps; + Gaussian jitter."""
    t = np.arange(int(5 * FPS)) / FPS
    r = np.clip((t - 2.0) / 0.5, 0, 1)
    truth = 0.1 + amp * (3 * r ** 2 - 2 * r ** 3)
    return t, truth, truth + np.random.default_rng(seed).normal(0, noise, t.shape)


def _run(f, t, x):
    return np.array([f(np.array([v]), ti)[0] for v, ti in zip(x, t)])


@pytest.mark.parametrize("group,noise,amp", [("angles", 0.02, 0.5), ("trans", 0.002, 0.05)])
def test_one_euro_reduces_jitter_with_bounded_lag(group, noise, amp):
    params = getattr(SmoothingConfig(), group)
    for seed in range(3):
        t, truth, noisy = _head_turn(noise, amp, seed)
        out = _run(OneEuroFilter(params), t, noisy)
        still = ((t > 0.5) & (t < 2.0)) | (t > 3.5)
        assert np.std(out[still] - truth[still]) < 0.45 * noise  # jitter of a still head cut by > 55 %
        move = (t >= 2.0) & (t <= 2.7)
        assert np.max(np.abs(out[move] - truth[move])) < 0.2 * amp  # lag during a fast turn bounded
        after = t > 3.0
        assert np.max(np.abs(out[after] - truth[after])) < 3 * noise  # caught up 0.5 s after the turn
        raw_lag_free = _run(OneEuroFilter(EuroParams(params.min_cutoff, 0.0)), t, noisy)
        assert np.max(np.abs(out[move] - truth[move])) < np.max(np.abs(raw_lag_free[move] - truth[move]))


def test_one_euro_follows_fast_motion_and_steps():
    # a 30° head turn in 0.2 s: with beta the filter catches up within a few frames
    t = np.arange(60) / FPS
    x = np.where(t < 0.5, 0.0, np.minimum((t - 0.5) / 0.2, 1.0) * 0.52)
    fast = _run(OneEuroFilter(SmoothingConfig().angles), t, x)
    slow = _run(OneEuroFilter(EuroParams(min_cutoff=1.5, beta=0.0)), t, x)
    settle = np.argmax(t >= 0.9)
    assert abs(fast[settle] - 0.52) < 0.02
    assert abs(fast[settle] - 0.52) < abs(slow[settle] - 0.52)  # beta reduces the lag of fast motion


def test_one_euro_first_sample_and_repeated_timestamps():
    f = OneEuroFilter(EuroParams(1.0, 0.5))
    np.testing.assert_array_equal(f(np.array([1.0, 2.0]), 0.0), [1.0, 2.0])
    y = f(np.array([1.5, 2.5]), 0.0)  # same timestamp: no division by zero, small step
    assert np.isfinite(y).all() and (y >= [1.0, 2.0]).all() and (y <= [1.5, 2.5]).all()


def test_similarity_params_round_trip():
    rng = np.random.default_rng(1)
    for _ in range(20):
        s, phi = rng.uniform(0.3, 3), rng.uniform(-3, 3)
        A = s * np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])
        M = np.concatenate([A, rng.uniform(-500, 500, (2, 1))], 1)
        p = similarity_params(M)
        np.testing.assert_allclose(similarity_matrix(p), M, atol=1e-9)
        # (u, v) is the original pixel that lands on the crop centre
        np.testing.assert_allclose(M[:, :2] @ p[2:] + M[:, 2], [112, 112], atol=1e-9)


def test_face_tracker_keeps_ids_and_drops_lost_tracks():
    tr = FaceTracker(max_missed=2)
    a, b = np.array([100, 100, 200, 200.0]), np.array([400, 100, 500, 200.0])
    ids = tr.assign([a, b])
    assert ids == [0, 1]
    assert tr.assign([b + 5, a - 5]) == [1, 0]  # order swapped, ids follow the faces
    assert tr.assign([a]) == [0]
    tr.assign([a]), tr.assign([a])
    assert 1 in tr.dropped or 1 not in tr.tracks
    assert tr.assign([a, b]) == [0, 2]  # a lost face comes back as a new track


def test_face_smoother_smooths_pose_not_identity():
    lay = CoeffLayout(n_id=4, n_exp=3, n_tex=2)
    sm = FaceSmoother(lay, SmoothingConfig())
    rng = np.random.default_rng(0)
    M = np.array([[1.2, 0.0, -200.0], [0.0, 1.2, -100.0]])
    base = np.zeros(lay.total, np.float32)
    outs = []
    for i in range(60):
        c = base + rng.normal(0, 0.02, lay.total).astype(np.float32)
        Mi = M.copy()
        Mi[:, 2] += rng.normal(0, 1.0, 2)
        co, Mo = sm([7], c[None], Mi[None], i / FPS)
        outs.append((c, co[0], Mo[0]))
        np.testing.assert_array_equal(co[0, lay.slices["id"]], c[lay.slices["id"]])  # identity untouched
        np.testing.assert_array_equal(co[0, lay.slices["tex"]], c[lay.slices["tex"]])
    raw = np.array([o[0][lay.slices["angles"]] for o in outs[10:]])
    smo = np.array([o[1][lay.slices["angles"]] for o in outs[10:]])
    assert smo.std(0).mean() < 0.5 * raw.std(0).mean()
    tx = np.array([o[2][0, 2] for o in outs[10:]])
    assert tx.std() < 0.6  # raw jitter std is 1.0 px
    off = FaceSmoother(lay, SmoothingConfig(enabled=False))
    c = rng.normal(size=(1, lay.total)).astype(np.float32)
    np.testing.assert_array_equal(off([0], c, M[None], 0.0)[0], c)
