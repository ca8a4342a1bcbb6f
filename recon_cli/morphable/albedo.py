"""A synthetic albedo model for morphable models released without one (ICT-FaceKit light).

Mean albedo
    A plausible linear-RGB skin colour, darker and redder on the lips (inside the outer lip
    contour, landmarks 48–59, seen from the front) and darker on the eyebrows (a band around
    the brow landmarks 17–21 and 22–26); the region weights are smoothed over the mesh so that
    there are no hard edges.

Texture basis (``n_tex`` modes, default 80)
    Products ``φ_k(v) · c_j`` of the mesh's smoothest vibration modes ``φ_k`` (eigenvectors of
    the cotangent Laplacian, ``L φ = λ M φ`` with the lumped mass matrix, ``φ_0`` constant) and
    three orthonormal colour directions: ``c_0`` the mean skin colour direction ("tone",
    lighter/darker skin), ``c_1`` red-vs-blue chroma orthogonal to it, ``c_2 = c_0 × c_1``.
    Modes are ordered by eigenvalue, then colour: ``(φ_0 c_0, φ_0 c_1, φ_0 c_2, φ_1 c_0, …)``.
    Each ``φ_k`` has unit RMS over vertices and a fixed sign (its largest-magnitude entry is
    positive); a coefficient of 1.0 is one standard deviation: ``const_std[j]`` for ``φ_0``
    and ``mode_std[j] · (λ_1 / λ_k)^{1/4}`` for ``k ≥ 1`` (albedo units, linear RGB in [0, 1]).

The eigen-solve is deterministic (fixed start vector, sign convention) so that rebuilding a
model from the same sources reproduces the same file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon_cli.mesh.topology import adjacency, cotangent_laplacian


@dataclass(frozen=True)
class AlbedoConfig:
    """Colours are linear RGB in [0, 1]; widths in metres; stds in albedo units."""

    skin: tuple[float, float, float] = (0.58, 0.38, 0.29)
    lips: tuple[float, float, float] = (0.50, 0.24, 0.21)
    brows: tuple[float, float, float] = (0.26, 0.18, 0.14)
    brow_halfwidth: float = 0.006
    smooth_iters: int = 4
    const_std: tuple[float, float, float] = (0.10, 0.03, 0.02)
    mode_std: tuple[float, float, float] = (0.04, 0.015, 0.01)


def _point_in_polygon(p: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd test: ``p (N, 2)`` inside closed polygon ``poly (M, 2)`` → ``(N,) bool``."""
    inside = np.zeros(len(p), dtype=bool)
    x, y = p[:, 0], p[:, 1]
    for k in range(len(poly)):
        (x1, y1), (x2, y2) = poly[k], poly[(k + 1) % len(poly)]
        cond = (y1 > y) != (y2 > y)
        xint = x1 + (y - y1) * (x2 - x1) / np.where(y2 == y1, 1e-30, y2 - y1)
        inside ^= cond & (x < xint)
    return inside


def _dist_to_polyline(p: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Euclidean distance from ``p (N, 3)`` to the polyline ``line (M, 3)`` → ``(N,)``."""
    best = np.full(len(p), np.inf)
    for a, b in zip(line[:-1], line[1:]):
        ab = b - a
        t = np.clip((p - a) @ ab / max(float(ab @ ab), 1e-30), 0.0, 1.0)
        best = np.minimum(best, np.linalg.norm(p - (a + t[:, None] * ab), axis=1))
    return best


def _smooth(values: np.ndarray, faces: np.ndarray, iters: int) -> np.ndarray:
    """``iters`` steps of uniform Laplacian smoothing (each vertex ← mean of itself + neighbours)."""
    a = adjacency(faces, len(values))
    deg = np.asarray(a.sum(axis=1)).ravel() + 1.0
    for _ in range(iters):
        values = (a @ values + values) / (deg[:, None] if values.ndim == 2 else deg)
    return values


def mean_albedo(verts: np.ndarray, faces: np.ndarray, landmarks68: np.ndarray,
                cfg: AlbedoConfig = AlbedoConfig()) -> np.ndarray:
    """Mean skin albedo ``(V, 3) float64`` linear RGB for a frontal mesh in the model frame.

    ``verts (V, 3)`` metres (+x right, +y up, +z towards the camera), ``faces (F, 3)``,
    ``landmarks68 (68,)`` vertex indices in iBUG order.
    """
    lm = verts[landmarks68]
    w_lips = _point_in_polygon(verts[:, :2], lm[48:60, :2]).astype(np.float64)
    w_lips *= verts[:, 2] > lm[48:60, 2].min() - 0.01  # front of the face only
    d_brow = np.minimum(_dist_to_polyline(verts, lm[17:22]), _dist_to_polyline(verts, lm[22:27]))
    w_brow = np.exp(-0.5 * (d_brow / cfg.brow_halfwidth) ** 2)
    w = _smooth(np.stack([w_lips, w_brow], 1), faces, cfg.smooth_iters)
    skin, lips, brows = (np.asarray(c, dtype=np.float64) for c in (cfg.skin, cfg.lips, cfg.brows))
    out = skin[None] * (1 - w[:, :1] - w[:, 1:]) + lips[None] * w[:, :1] + brows[None] * w[:, 1:]
    return np.clip(out, 0.0, 1.0)


def colour_directions(mean_colour) -> np.ndarray:
    """Orthonormal colour axes ``(3, 3)``: tone (mean colour direction), red-vs-blue chroma
    orthogonal to it, and their cross product."""
    t = np.asarray(mean_colour, dtype=np.float64)
    t = t / np.linalg.norm(t)
    u = np.array([1.0, 0.0, -1.0])
    c1 = u - (u @ t) * t
    c1 /= np.linalg.norm(c1)
    return np.stack([t, c1, np.cross(t, c1)])


def smooth_modes(verts: np.ndarray, faces: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` smoothest cotangent-Laplacian modes of a connected mesh.

    Returns ``(phi (n, V) float64, lam (n,))``: ``phi[0]`` is the constant 1, every mode has
    unit RMS and its largest-magnitude entry positive; ``lam`` ascending (1 / length² units).
    """
    from scipy.sparse.linalg import eigsh

    lap, mass = cotangent_laplacian(verts, faces)
    v0 = np.random.default_rng(0).standard_normal(len(verts))
    sigma = -1e-3 * float(lap.diagonal().mean() / mass.diagonal().mean())
    lam, vec = eigsh(lap, k=n, M=mass, sigma=sigma, which="LM", v0=v0, tol=1e-12)
    order = np.argsort(lam)
    lam, phi = lam[order], vec[:, order].T.copy()
    lam[0] = 0.0
    phi[0] = 1.0
    phi /= np.sqrt(np.mean(phi**2, axis=1, keepdims=True))
    idx = np.argmax(np.abs(phi), axis=1)
    phi *= np.sign(phi[np.arange(n), idx])[:, None]
    return phi, lam


def texture_basis(verts: np.ndarray, faces: np.ndarray, mean: np.ndarray, n_tex: int = 80,
                  cfg: AlbedoConfig = AlbedoConfig()) -> np.ndarray:
    """Smooth albedo basis ``(n_tex, V, 3) float64`` (see the module docstring)."""
    n_eig = -(-n_tex // 3)
    phi, lam = smooth_modes(verts, faces, n_eig)
    dirs = colour_directions(np.mean(mean, axis=0))
    modes = []
    for k in range(n_eig):
        for j in range(3):
            std = cfg.const_std[j] if k == 0 else cfg.mode_std[j] * (lam[1] / lam[k]) ** 0.25
            modes.append(std * phi[k][:, None] * dirs[j][None, :])
    return np.stack(modes[:n_tex])
