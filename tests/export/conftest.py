"""Fixtures for the export tests: untrained registry encoders with a random non-zero head."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def default_model():
    from recon_cli.morphable import load_default_model

    return load_default_model()


@pytest.fixture(scope="session")
def real_crops(shared_data):
    """16 real aligned face crops ``(16, 3, 224, 224) float32`` [0, 1] from ../shared/data."""
    from export.calib import load_crops

    return load_crops(None, n=16)


def make_encoder(arch: str, model, seed: int = 0):
    """An untrained ``arch`` with a random head sized for ``model`` → ``(encoder, meta)``."""
    from export.onnx_export import load_encoder

    return load_encoder(None, arch=arch, untrained=True, model=model, seed=seed)
