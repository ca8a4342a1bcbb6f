"""The arithmetic behind the latency targets (export.flops)."""

from __future__ import annotations

import pytest

from export.flops import encoder_gmac, gemm_gflops


@pytest.mark.parametrize("arch,size,gmac", [("resnet50", 224, 4.09), ("resnet18", 224, 1.82), ("resnet18", 128, 0.59)])
def test_encoder_gmac_matches_the_published_counts(arch, size, gmac):
    """torchvision's ResNet-50 / -18 are 4.09 / 1.82 GMAC at 224; our head (2048 or 512 → 248
    coefficients instead of 1000 classes) changes that by < 0.001; the count scales with pixels."""
    from recon_cli.coeffs import CoeffLayout
    from recon_cli.encoders import build_encoder

    layout = CoeffLayout(n_id=100, n_exp=53, n_tex=80, n_light=9)
    enc = build_encoder(arch, layout, size)
    enc.train()
    assert encoder_gmac(enc, size) == pytest.approx(gmac, abs=0.01)
    assert enc.training  # mode restored


def test_gemm_rate_is_positive():
    assert gemm_gflops(1, n=256, repeat=2) > 0.1
