"""Frequency-domain losses on the orthonormal 2-D DFT (DESIGN.md):

    F = DFT2(x) per image channel, ``torch.fft.fft2(x, norm="ortho")`` over (H, W)
    FALoss = mean |F_in − F_render|²                (amplitude term)
    FPLoss = mean |θ_in − θ_render|, θ = atan2(Im F, Re F)   (phase term)
    FreLoss = 0.5 · FALoss + 0.5 · FPLoss

Means run over batch, channels and all H × W frequencies. Both images are the input crop and
the render composited over it (the caller composites), RGB in [0, 1].

Amplitude term, two readings (``amplitude=`` option):

* ``"complex"`` (default, DESIGN.md's formula read literally): the squared modulus of the
  complex difference. With the orthonormal DFT, Parseval makes this *equal* to the mean squared
  pixel difference (Σ|F_a − F_b|² = Σ|a − b|²), i.e. a squared-L2 photometric term over the
  whole composited image.
* ``"amplitude"`` (alias ``"magnitude"``): ``(|F_in| − |F_render|)²``, the amplitude-spectrum
  difference. The paper's name "amplitude loss" and its split into amplitude and phase terms
  suggest this reading (the complex difference already contains the phase, and equals a plain
  L2 loss as noted above — see also B. Wroński, "Comparing images in frequency domain", 2021;
  Fuoli et al.'s Fourier-space losses, ICCV 2021, likewise split amplitude and phase). We keep
  the literal formula as default as DESIGN.md asks; the ablation can switch.

Phase term: ``atan2`` has an undefined gradient at (0, 0) (a zero-magnitude coefficient). We
use a safe atan2: where ``|F|² < mag_eps`` the phase is taken as 0 and no gradient flows
through it; elsewhere the gradient is exact. The literal ``|θ_in − θ_render|`` jumps by 2π
across the negative real axis; ``wrap=True`` uses the wrapped difference
``atan2(sin Δ, cos Δ) ∈ (−π, π]`` instead (off by default: DESIGN.md's formula).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

_AMPLITUDE = ("complex", "amplitude", "magnitude")


def spectrum(x: Tensor) -> Tensor:
    """``x: (B, C, H, W)`` real → ``(B, C, H, W)`` complex orthonormal 2-D DFT per channel."""
    return torch.fft.fft2(x, norm="ortho")


def safe_phase(z: Tensor, mag_eps: float = 1e-12) -> Tensor:
    """Phase ``atan2(Im z, Re z)`` of complex ``z`` with a finite gradient everywhere.

    Coefficients with ``|z|² < mag_eps`` get phase 0 and zero gradient.
    """
    re, im = z.real, z.imag
    small = (re * re + im * im) < mag_eps
    re_s = torch.where(small, torch.ones_like(re), re)
    im_s = torch.where(small, torch.zeros_like(im), im)
    return torch.where(small, torch.zeros_like(re), torch.atan2(im_s, re_s))


def amplitude_loss(x_in: Tensor, x_render: Tensor, *, amplitude: str = "complex",
                   mag_eps: float = 1e-12) -> Tensor:
    """FALoss between ``x_in, x_render: (B, C, H, W)``; scalar mean over all frequencies."""
    if amplitude not in _AMPLITUDE:
        raise ValueError(f"amplitude must be one of {_AMPLITUDE}, got {amplitude!r}")
    f_in, f_r = spectrum(x_in), spectrum(x_render)
    if amplitude == "complex":
        d = f_in - f_r
        return (d.real ** 2 + d.imag ** 2).mean()
    # |z| = sqrt(re² + im²) with a safe gradient at 0
    mag = lambda z: torch.sqrt(z.real ** 2 + z.imag ** 2 + mag_eps)  # noqa: E731
    return ((mag(f_in) - mag(f_r)) ** 2).mean()


def _self_conjugate(h: int, w: int, device) -> Tensor:
    """``(H, W)`` bool: the bins that are exactly real for a real image (DC and Nyquist rows/cols)."""
    ry = torch.zeros(h, dtype=torch.bool, device=device)
    rx = torch.zeros(w, dtype=torch.bool, device=device)
    ry[0] = rx[0] = True
    if h % 2 == 0:
        ry[h // 2] = True
    if w % 2 == 0:
        rx[w // 2] = True
    return ry[:, None] & rx[None, :]


def image_phase(x: Tensor, mag_eps: float = 1e-12) -> Tensor:
    """Phase ``(B, C, H, W)`` in (−π, π] of the orthonormal DFT of the real image ``x``.

    The bins that are real for any real image (DC, Nyquist) get their rounding-noise imaginary
    part set to +0, so a negative real coefficient has phase +π deterministically (NumPy's
    ``np.angle`` convention) instead of ±π depending on the FFT's rounding.
    """
    f = spectrum(x)
    real_bins = _self_conjugate(x.shape[-2], x.shape[-1], x.device)
    f = torch.complex(f.real, torch.where(real_bins, torch.zeros_like(f.imag), f.imag))
    return safe_phase(f, mag_eps)


def phase_loss(x_in: Tensor, x_render: Tensor, *, wrap: bool = False, mag_eps: float = 1e-12) -> Tensor:
    """FPLoss between ``x_in, x_render: (B, C, H, W)``: mean |Δθ| in radians."""
    d = image_phase(x_in, mag_eps) - image_phase(x_render, mag_eps)
    if wrap:
        d = torch.atan2(torch.sin(d), torch.cos(d))
    return d.abs().mean()


def frequency_loss(x_in: Tensor, x_render: Tensor, *, amplitude: str = "complex", wrap: bool = False,
                   alpha: float = 0.5, mag_eps: float = 1e-12) -> Tensor:
    """FreLoss = α · FALoss + (1 − α) · FPLoss (α = 0.5, the paper).

    Args:
        x_in: ``(B, C, H, W)`` float, the input crop, RGB in [0, 1].
        x_render: ``(B, C, H, W)`` float, the render composited over the input.
    """
    if x_in.shape != x_render.shape or x_in.dim() != 4:
        raise ValueError(f"x_in and x_render must both be (B, C, H, W); got {tuple(x_in.shape)} and {tuple(x_render.shape)}")
    fa = amplitude_loss(x_in, x_render, amplitude=amplitude, mag_eps=mag_eps)
    fp = phase_loss(x_in, x_render, wrap=wrap, mag_eps=mag_eps)
    return alpha * fa + (1.0 - alpha) * fp


class FrequencyLoss(nn.Module):
    """``nn.Module`` wrapper of :func:`frequency_loss`."""

    def __init__(self, amplitude: str = "complex", wrap: bool = False, alpha: float = 0.5):
        super().__init__()
        if amplitude not in _AMPLITUDE:
            raise ValueError(f"amplitude must be one of {_AMPLITUDE}, got {amplitude!r}")
        self.amplitude, self.wrap, self.alpha = amplitude, wrap, alpha

    def forward(self, x_in: Tensor, x_render: Tensor) -> Tensor:
        return frequency_loss(x_in, x_render, amplitude=self.amplitude, wrap=self.wrap, alpha=self.alpha)
