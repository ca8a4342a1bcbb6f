"""Lambertian shading under 3-band spherical-harmonics (SH) illumination, as in Deep3DFaceRecon.

Irradiance at a surface with unit normal ``n = (x, y, z)`` (world frame: +x right, +y up,
+z towards the camera, see :mod:`recon_cli.render.camera`) is ``E(n) = Σ_k γ_k · Y_k(n)`` with
the 9 basis functions pre-multiplied by the Lambertian kernel's band factors ``a_l`` and the SH
normalisation constants ``c_l`` (Ramamoorthi & Hanrahan 2001; signs and order as Deep3DFaceRecon):

    a0 = π,          a1 = 2π/√3,       a2 = 2π/√8
    c0 = 1/√(4π),    c1 = √3/√(4π),    c2 = 3√5/√(12π)

    Y0 = a0 c0                    Y1 = −a1 c1 y      Y2 = a1 c1 z      Y3 = −a1 c1 x
    Y4 = a2 c2 x y                Y5 = −a2 c2 y z    Y6 = a2 c2 /(2√3) (3 z² − 1)
    Y7 = −a2 c2 x z               Y8 = a2 c2 /2 (x² − y²)

Shaded colour = albedo ⊙ E (per channel). Coefficients: 9 (white light: the same γ for R, G, B)
or 27 (RGB, channel-major ``[r0..r8, g0..g8, b0..b8]``, :mod:`recon_cli.coeffs`). A constant
``init_lit`` (default ``[0.8, 0, …, 0]``, Deep3DFaceRecon's) is added to the predicted
coefficients, so all-zero coefficients give uniform ambient light ``E = 0.8 · a0 c0 ≈ 0.709``.

Works on torch tensors (differentiable) and NumPy arrays.
"""

from __future__ import annotations

import math

import numpy as np

A = (math.pi, 2 * math.pi / math.sqrt(3.0), 2 * math.pi / math.sqrt(8.0))
C = (1 / math.sqrt(4 * math.pi), math.sqrt(3.0) / math.sqrt(4 * math.pi), 3 * math.sqrt(5.0) / math.sqrt(12 * math.pi))
INIT_LIT = (0.8, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def sh_basis(normals):
    """``normals (..., 3)`` unit vectors → ``(..., 9)`` Lambertian-convolved SH basis values."""
    if _is_torch(normals):
        import torch

        stack, ones = torch.stack, torch.ones_like
        x, y, z = normals.unbind(-1)
    else:
        stack, ones = np.stack, np.ones_like
        x, y, z = normals[..., 0], normals[..., 1], normals[..., 2]
    k0, k1, k2 = A[0] * C[0], A[1] * C[1], A[2] * C[2]
    return stack([
        k0 * ones(x), -k1 * y, k1 * z, -k1 * x,
        k2 * x * y, -k2 * y * z, 0.5 * k2 / math.sqrt(3.0) * (3 * z * z - 1),
        -k2 * x * z, 0.5 * k2 * (x * x - y * y),
    ], -1)


def sh_coefficients(light, init_lit=INIT_LIT):
    """``light (B, 9)`` or ``(B, 27)`` predicted coefficients → ``γ (B, 9, 3)`` (per basis
    function, per RGB channel) with ``init_lit`` (9 values) added to every channel."""
    n = light.shape[-1]
    if n not in (9, 27):
        raise ValueError(f"SH light needs 9 (white) or 27 (RGB) coefficients, got {n}")
    if _is_torch(light):
        import torch

        init = torch.as_tensor(init_lit, dtype=light.dtype, device=light.device)
        if n == 9:
            return (light + init)[..., :, None].expand(*light.shape[:-1], 9, 3)
        return (light.reshape(*light.shape[:-1], 3, 9) + init).transpose(-1, -2)
    light, init = np.asarray(light), np.asarray(init_lit, dtype=np.float64)
    if n == 9:
        return np.repeat((light + init)[..., :, None], 3, axis=-1)
    return np.swapaxes(light.reshape(*light.shape[:-1], 3, 9) + init, -1, -2)


def irradiance(normals, light, init_lit=INIT_LIT):
    """``normals (B, V, 3)`` unit (world frame), ``light (B, 9|27)`` → ``(B, V, 3)`` RGB irradiance."""
    Y = sh_basis(normals)  # (B, V, 9)
    gamma = sh_coefficients(light, init_lit)  # (B, 9, 3)
    return Y @ gamma


def shade(albedo, normals, light, init_lit=INIT_LIT):
    """Lambertian SH shading: ``albedo (B, V, 3)`` [0, 1] linear RGB, ``normals (B, V, 3)`` unit,
    world frame, ``light (B, 9|27)`` → per-vertex colour ``(B, V, 3)`` (not clipped)."""
    return albedo * irradiance(normals, light, init_lit)
