"""Left/right mirror operators of a morphable model, in coefficient space.

A face and its mirror image: a shape ``S = S̄ + B_id·id + B_exp·exp`` (model space, metres, x towards
image right at zero pose) mirrored through the plane x = 0 is ``S'(v) = diag(−1, 1, 1)·S(m(v))``,
where ``m`` maps each vertex to its mirror vertex on the mean shape. For a symmetric mean mesh (ICT-
FaceKit's and the BFM's are) each basis mode mirrors onto a combination of the modes of its own
basis: ``mirror(B_k) ≈ Σ_j P[j, k]·B_j``, so the mirrored face has the coefficients ``P·id`` and
``P·exp``. For ICT-FaceKit's expression blendshapes ``P_exp`` is the ``_L``/``_R`` (and
``Left``/``Right``) swap; its identity modes are a PCA of scans, whose ``P_id`` is a general matrix.

The antisymmetric part of a coefficient vector ``c`` is ``(c − P·c) / 2``: the part that changes
sign in the mirror image (:mod:`recon_cli.pipeline.symmetry` uses it).
"""

from __future__ import annotations

import numpy as np

from recon_cli.errors import InputError

#: the mean shape must mirror onto itself within this distance (metres) at the 99th percentile
MAX_MIRROR_GAP_M = 1e-3


def vertex_mirror_map(model) -> np.ndarray:
    """``(V,) int64``: the vertex nearest to each vertex's mirror image (x negated) on the mean shape.
    :class:`InputError` when the mesh is not left/right symmetric."""
    from scipy.spatial import cKDTree

    v = model.mean_shape.astype(np.float64)
    dist, idx = cKDTree(v).query(v * np.array([-1.0, 1.0, 1.0]))
    gap = float(np.percentile(dist, 99))
    if gap > MAX_MIRROR_GAP_M:
        raise InputError(f"morphable model {model.name!r} is not left/right symmetric (99th-percentile mirror gap "
                         f"{gap * 1000:.2f} mm)", hint="the mirror operators need a symmetric mean mesh")
    return idx.astype(np.int64)


def _operator(basis: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """``basis (K, V, 3)`` → ``P (K, K)`` with ``mirror(basis[k]) ≈ Σ_j P[j, k]·basis[j]`` (least squares)."""
    b = basis.astype(np.float64)
    m = b[:, mirror].copy()
    m[..., 0] *= -1.0
    k = len(b)
    P, *_ = np.linalg.lstsq(b.reshape(k, -1).T, m.reshape(k, -1).T, rcond=None)
    return P


def mirror_operators(model) -> tuple[np.ndarray, np.ndarray]:
    """``(P_id (n_id, n_id), P_exp (n_exp, n_exp))``: mirrored coefficients are ``P @ c`` (column
    vectors; for rows ``c @ P.T``)."""
    mirror = vertex_mirror_map(model)
    return _operator(model.id_basis, mirror), _operator(model.exp_basis, mirror)
