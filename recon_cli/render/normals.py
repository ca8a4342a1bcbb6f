"""Face and vertex normals (torch or NumPy, dispatching on the argument type).

Vertex normals are the area-weighted sum of the incident faces' normals (the unnormalised
cross products), normalised. Triangles are counter-clockwise seen from outside
(:mod:`recon_cli.morphable.model`), so normals point outwards; for a frontal face in model
space they point to +z (towards the camera).
"""

from __future__ import annotations

import numpy as np


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def face_normals(verts, faces, normalize: bool = True):
    """``verts (B, V, 3)``, ``faces (F, 3)`` int → ``(B, F, 3)``: unit normals, or with
    ``normalize=False`` the cross products ``(v1 − v0) × (v2 − v0)`` (length = 2·area)."""
    if _is_torch(verts):
        import torch

        f = faces if _is_torch(faces) else torch.as_tensor(np.asarray(faces), dtype=torch.int64)
        f = f.to(device=verts.device, dtype=torch.int64)
        v0, v1, v2 = (verts.index_select(1, f[:, k]) for k in range(3))
        a, b = v1 - v0, v2 - v0
        # Written out: faster than torch.cross on CPU, same result.
        n = torch.stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
                         a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                         a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]], -1)
        return torch.nn.functional.normalize(n, dim=-1, eps=1e-20) if normalize else n
    verts, f = np.asarray(verts), np.asarray(faces, dtype=np.int64)
    v0, v1, v2 = verts[:, f[:, 0]], verts[:, f[:, 1]], verts[:, f[:, 2]]
    n = np.cross(v1 - v0, v2 - v0)
    return _np_normalize(n) if normalize else n


def vertex_normals(verts, faces, vertex_faces=None):
    """Area-weighted unit vertex normals.

    Args:
        verts: ``(B, V, 3)`` float (any length unit, any frame; normals are in the same frame).
        faces: ``(F, 3)`` int, counter-clockwise from outside.
        vertex_faces: ``(V, M)`` int incident triangles padded with −1
            (``MorphableModel.vertex_faces``); computed by scatter-add over ``faces`` when None.
    Returns:
        ``(B, V, 3)`` unit normals (zero vectors for vertices with no non-degenerate face).
    """
    B, V = verts.shape[0], verts.shape[1]
    if _is_torch(verts):
        return _vertex_normals_torch(verts, faces, vertex_faces)
    fn = face_normals(verts, faces, normalize=False)  # (B, F, 3), |n| = 2·area
    n = np.zeros((B, V, 3), dtype=fn.dtype)
    f = np.asarray(faces, dtype=np.int64)
    for b in range(B):
        for i in range(3):
            np.add.at(n[b], f[:, i], fn[b])
    return _np_normalize(n)


def _np_normalize(n: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    return n / np.maximum(norm, 1e-20)


def _vertex_normals_torch(verts, faces, vertex_faces):
    """Torch path in coordinate-plane layout ``(3, B, ·)``: contiguous component arithmetic and
    single gathers (several times faster on CPU than ``(B, ·, 3)`` strided ops). Returns a
    ``(B, V, 3)`` view of a ``(3, B, V)`` buffer (components are contiguous planes)."""
    import torch

    B, V = verts.shape[0], verts.shape[1]
    f = faces if _is_torch(faces) else torch.as_tensor(np.asarray(faces))
    f = f.to(device=verts.device, dtype=torch.int64)
    P = verts.permute(2, 0, 1).contiguous()  # (3, B, V)
    p0, p1, p2 = (P.index_select(2, f[:, k]) for k in range(3))  # (3, B, F)
    (a0, a1, a2), (b0, b1, b2) = (p1 - p0).unbind(0), (p2 - p0).unbind(0)  # unbind: one cheap backward
    fn = torch.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0])
    if vertex_faces is not None:
        vf = vertex_faces if _is_torch(vertex_faces) else torch.as_tensor(np.asarray(vertex_faces))
        vf = vf.to(device=verts.device, dtype=torch.int64)
        F = fn.shape[2]
        padded = torch.cat([fn, fn.new_zeros(3, B, 1)], 2)  # index F (for the −1 padding) → zero
        idx = torch.where(vf < 0, torch.full_like(vf, F), vf)
        n = padded.index_select(2, idx.reshape(-1)).view(3, B, V, -1).sum(3)
    else:
        n = fn.new_zeros(3, B, V)
        for k in range(3):
            n = n.index_add(2, f[:, k], fn)
    n0, n1, n2 = n.unbind(0)
    norm = (n0 * n0 + n1 * n1 + n2 * n2).sqrt().clamp_min(1e-20)
    return (n / norm).permute(1, 2, 0)
