"""Coefficient regularisation (the paper's table, DESIGN.md):

    L_reg(b) = ω_id ‖id‖² + ω_exp ‖exp‖² + ω_tex ‖tex‖² + ω_light ‖light‖²
    ω = (1e-4, 0.8e-4, 1e-1, 1e-2);  L_reg = mean_b L_reg(b)

``‖·‖²`` is the sum of squares over the coefficients of one group. Coefficients are in units of
one standard deviation of the model's basis (see :mod:`recon_cli.coeffs`), and zero light means
ambient light, so the regulariser pulls towards the mean face under ambient light.

Deep3DFaceRecon adds two further terms that the paper's table does not list; they are available
with weight 0 by default: :func:`light_colour_loss` (RGB spherical harmonics kept near
monochrome, its ``gamma`` loss) and :func:`reflectance_loss` (albedo variance over the skin, its
``reflectance`` loss; needs per-vertex albedo, so the trainer calls it when enabled).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn


@dataclass(frozen=True)
class RegWeights:
    """Per-group weights ω of the regulariser (paper defaults)."""

    id: float = 1e-4
    exp: float = 0.8e-4
    tex: float = 1e-1
    light: float = 1e-2


def regularisation_loss(coeffs: dict[str, Tensor], weights: RegWeights = RegWeights()) -> Tensor:
    """Weighted squared norms of the coefficient groups.

    Args:
        coeffs: dict with ``id (B, n_id)``, ``exp (B, n_exp)``, ``tex (B, n_tex)``,
            ``light (B, 9 or 27)`` (e.g. ``CoeffLayout.split(coeffs)``); other keys are ignored.
        weights: ω per group.

    Returns:
        scalar tensor: batch mean.
    """
    per_sample = (weights.id * (coeffs["id"] ** 2).sum(-1)
                  + weights.exp * (coeffs["exp"] ** 2).sum(-1)
                  + weights.tex * (coeffs["tex"] ** 2).sum(-1)
                  + weights.light * (coeffs["light"] ** 2).sum(-1))
    return per_sample.mean()


def light_colour_loss(light: Tensor) -> Tensor:
    """Deep3DFaceRecon's monochrome-light term for RGB SH ``light: (B, 27)`` (channel-major).

    Mean over batch, channels and bands of the squared deviation from the per-band channel mean.
    Returns 0 for white light ``(B, 9)``.
    """
    if light.shape[-1] == 9:
        return light.sum() * 0.0
    g = light.reshape(light.shape[0], 3, 9)
    return ((g - g.mean(dim=1, keepdim=True)) ** 2).mean()


def reflectance_loss(albedo: Tensor, skin: Tensor) -> Tensor:
    """Deep3DFaceRecon's albedo-flatness term.

    Args:
        albedo: ``(B, V, 3)`` per-vertex albedo, linear RGB.
        skin: ``(V,)`` float 0/1, vertices whose albedo should be uniform (skin region).

    Returns:
        scalar: Σ_b Σ_v skin·‖a − ā‖² / (B · Σ skin), ā the skin-mean albedo of each sample.
    """
    m = skin.to(albedo.dtype).reshape(1, -1, 1)
    n = m.sum().clamp_min(1.0)
    mean = (m * albedo).sum(1, keepdim=True) / n
    return (((albedo - mean) * m) ** 2).sum() / (albedo.shape[0] * n)


class RegularisationLoss(nn.Module):
    """``nn.Module`` wrapper of :func:`regularisation_loss`."""

    def __init__(self, weights: RegWeights = RegWeights()):
        super().__init__()
        self.weights = weights

    def forward(self, coeffs: dict[str, Tensor]) -> Tensor:
        return regularisation_loss(coeffs, self.weights)
