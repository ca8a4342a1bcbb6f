"""Mesh topology and differential helpers used by the morphable-model importers.

All functions are NumPy/SciPy only (no torch): the torch-free runtime may import this module.

Conventions: ``verts (V, 3) float`` in any length unit, ``faces (F, 3) int`` vertex indices,
counter-clockwise seen from outside (right-hand rule gives the outward normal).
"""

from __future__ import annotations

import numpy as np


def triangulate_quads(quads: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Split quads ``(Q, 4)`` into triangles ``(2Q, 3)`` along each quad's shorter diagonal.

    Both triangles keep the quad's winding (a, b, c, d) → (a, b, c) + (a, c, d) or
    (a, b, d) + (b, c, d); the choice depends only on ``verts`` (deterministic).
    """
    quads = np.asarray(quads, dtype=np.int64)
    a, b, c, d = quads.T
    diag_ac = np.linalg.norm(verts[a] - verts[c], axis=1)
    diag_bd = np.linalg.norm(verts[b] - verts[d], axis=1)
    use_ac = diag_ac <= diag_bd
    t1 = np.where(use_ac[:, None], np.stack([a, b, c], 1), np.stack([a, b, d], 1))
    t2 = np.where(use_ac[:, None], np.stack([a, c, d], 1), np.stack([b, c, d], 1))
    return np.stack([t1, t2], 1).reshape(-1, 3)


def face_normals(verts: np.ndarray, faces: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Per-triangle normals ``(F, 3)`` by the right-hand rule (unnormalised = 2 × area vector)."""
    v0, v1, v2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    n = np.cross(v1 - v0, v2 - v0)
    if normalize:
        n = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-30)
    return n


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals ``(V, 3)``."""
    fn = face_normals(verts, faces, normalize=False)
    vn = np.zeros_like(verts, dtype=np.float64)
    for k in range(3):
        np.add.at(vn, faces[:, k], fn)
    return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-30)


def compact(faces: np.ndarray, n_verts: int) -> tuple[np.ndarray, np.ndarray]:
    """Drop vertices no face uses.

    Returns ``(kept, faces_new)``: ``kept (V',) int64`` old indices in increasing order and the
    faces re-indexed into ``[0, V')``.
    """
    used = np.zeros(n_verts, dtype=bool)
    used[np.asarray(faces).reshape(-1)] = True
    kept = np.nonzero(used)[0]
    remap = np.full(n_verts, -1, dtype=np.int64)
    remap[kept] = np.arange(len(kept))
    return kept, remap[faces]


def adjacency(faces: np.ndarray, n_verts: int):
    """Symmetric vertex adjacency as a ``scipy.sparse.csr_matrix`` of ones ``(V, V)``."""
    import scipy.sparse as sp

    f = np.asarray(faces, dtype=np.int64)
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    a = sp.csr_matrix((np.ones(len(i)), (i, j)), shape=(n_verts, n_verts))
    a.data[:] = 1.0
    return a


def connected_components(faces: np.ndarray, n_verts: int) -> np.ndarray:
    """Component label per vertex ``(V,) int`` (isolated vertices get their own label)."""
    from scipy.sparse.csgraph import connected_components as cc

    return cc(adjacency(faces, n_verts), directed=False)[1]


def cotangent_laplacian(verts: np.ndarray, faces: np.ndarray):
    """Cotangent Laplacian and lumped (barycentric) mass matrix.

    Returns ``(L, M)``: ``L (V, V)`` symmetric positive semi-definite CSR matrix with
    ``L_ij = -(cot α_ij + cot β_ij) / 2`` off the diagonal and zero row sums; ``M (V, V)`` diagonal
    with one third of the incident triangle areas per vertex (units²). ``L φ = λ M φ`` gives the
    mesh's vibration modes, smooth for small λ.
    """
    import scipy.sparse as sp

    v = np.asarray(verts, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    n = len(v)
    rows, cols, vals = [], [], []
    area = 0.5 * np.linalg.norm(face_normals(v, f, normalize=False), axis=1)
    for k in range(3):
        i, j, o = f[:, (k + 1) % 3], f[:, (k + 2) % 3], f[:, k]  # edge (i, j) opposite vertex o
        e1, e2 = v[i] - v[o], v[j] - v[o]
        cot = np.einsum("ij,ij->i", e1, e2) / np.maximum(np.linalg.norm(np.cross(e1, e2), axis=1), 1e-30)
        rows += [i, j]
        cols += [j, i]
        vals += [-0.5 * cot, -0.5 * cot]
    off = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    lap = off - sp.diags(np.asarray(off.sum(axis=1)).ravel())
    mass = np.zeros(n)
    for k in range(3):
        np.add.at(mass, f[:, k], area / 3.0)
    return lap.tocsr(), sp.diags(mass).tocsr()


def boundary_edges(faces: np.ndarray) -> np.ndarray:
    """Edges used by exactly one triangle ``(E, 2)`` (sorted vertex pairs)."""
    f = np.asarray(faces, dtype=np.int64)
    e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    uniq, counts = np.unique(e, axis=0, return_counts=True)
    return uniq[counts == 1]


def trim_spikes(faces: np.ndarray, iters: int = 2, protect: np.ndarray | None = None) -> np.ndarray:
    """Smooth a staircase border: repeatedly drop triangles with two or more boundary edges.

    ``protect`` (vertex indices) keeps every triangle touching those vertices. Returns the kept
    faces (a subset of the rows of ``faces``, order preserved); callers re-index with
    :func:`compact`.
    """
    f = np.asarray(faces, dtype=np.int64)
    protected = np.zeros(int(f.max(initial=-1)) + 1, dtype=bool)
    if protect is not None:
        protected[np.asarray(protect, dtype=np.int64)] = True
    for _ in range(iters):
        e = np.sort(np.stack([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], 1), axis=2)  # (F, 3, 2)
        key = e[..., 0] * (protected.size + 1) + e[..., 1]
        uniq, inv, counts = np.unique(key.ravel(), return_inverse=True, return_counts=True)
        n_boundary = (counts[inv].reshape(-1, 3) == 1).sum(axis=1)
        drop = (n_boundary >= 2) & ~protected[f].any(axis=1)
        if not drop.any():
            break
        f = f[~drop]
    return f
