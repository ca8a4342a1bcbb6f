"""Shared fixtures: the development data folder and small synthetic morphable models."""

from __future__ import annotations

import os

import numpy as np
import pytest

from recon_cli.paths import data_dir

# Tests compare against references on 2 CPU cores; keep torch from oversubscribing.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def shared_data():
    """``../shared/data`` (or $RECON_DATA); skips with the reason where it is absent."""
    d = data_dir()
    if d is None:
        pytest.skip("development data not found: set RECON_DATA or place ../shared/data beside the repo")
    return d


def make_random_model(n_verts: int = 50, n_id: int = 6, n_exp: int = 4, n_tex: int = 5, seed: int = 0):
    """A small random but valid :class:`MorphableModel` (grid mesh) for unit tests."""
    from recon_cli.morphable import MorphableModel

    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n_verts)))
    n_verts = side * side
    gx, gy = np.meshgrid(np.linspace(-0.08, 0.08, side), np.linspace(-0.1, 0.1, side))
    mean = np.stack([gx.ravel(), gy.ravel(), 0.02 * np.cos(gx.ravel() * 20)], 1)
    tris = []
    for r in range(side - 1):
        for c in range(side - 1):
            a, b, d, e = r * side + c, r * side + c + 1, (r + 1) * side + c, (r + 1) * side + c + 1
            tris += [(a, b, e), (a, e, d)]
    return MorphableModel(
        name="random", mean_shape=mean, id_basis=rng.normal(0, 1e-3, (n_id, n_verts, 3)),
        exp_basis=rng.normal(0, 1e-3, (n_exp, n_verts, 3)), mean_albedo=np.full((n_verts, 3), 0.6),
        tex_basis=rng.normal(0, 0.02, (n_tex, n_verts, 3)), triangles=np.array(tris),
        landmarks68=rng.integers(0, n_verts, 68), licence="test", source="synthetic")


@pytest.fixture
def random_model():
    return make_random_model()
