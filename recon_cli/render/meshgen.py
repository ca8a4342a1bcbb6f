"""Generated meshes for tests and benchmarks (NumPy, torch-free).

* :func:`face_surface`: a dense face-like height field (ellipsoidal cap + nose + brow ridge)
  in model space (metres, +z towards the camera), counter-clockwise from the front; at the
  default camera (1 m, focal 1015 px) it covers about 160 × 200 px of a 224 crop, like an
  aligned face.
* :func:`icosphere`: a unit-radius geodesic sphere, outward counter-clockwise triangles.
"""

from __future__ import annotations

import numpy as np


def grid_faces(rows: int, cols: int) -> np.ndarray:
    """Triangles of a ``rows × cols`` vertex grid (row-major, row 0 at the top = +y), CCW seen
    from +z: ``(2 (rows-1)(cols-1), 3) int64``."""
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(cols - 1), indexing="ij")
    a = (r * cols + c).ravel()
    b, d, e = a + 1, a + cols, a + cols + 1
    # a b      row r   (y larger)
    # d e      row r+1 (y smaller)  → CCW from +z: (a, d, e), (a, e, b)
    return np.concatenate([np.stack([a, d, e], 1), np.stack([a, e, b], 1)]).astype(np.int64)


def face_surface(n_faces: int = 70_000, width: float = 0.16, height: float = 0.20) -> tuple[np.ndarray, np.ndarray]:
    """A face-like surface with about ``n_faces`` triangles.

    Returns ``verts (V, 3) float32`` metres (model space, centred at the origin in x/y) and
    ``faces (F, 3) int64``.
    """
    aspect = height / width
    cols = max(2, int(round(np.sqrt(n_faces / (2 * aspect)))) + 1)
    rows = max(2, int(round((cols - 1) * aspect)) + 1)
    x, y = np.meshgrid(np.linspace(-width / 2, width / 2, cols), np.linspace(height / 2, -height / 2, rows))
    rx, ry = width / 2 * 1.05, height / 2 * 1.05
    cap = 0.07 * np.sqrt(np.clip(1 - (x / rx) ** 2 - (y / ry) ** 2, 0, None))
    nose = 0.025 * np.exp(-(x / 0.012) ** 2 - ((y + 0.005) / 0.03) ** 2)
    brow = 0.006 * np.exp(-((y - 0.035) / 0.01) ** 2) * (np.abs(x) < 0.06)
    eyes = -0.008 * (np.exp(-((np.abs(x) - 0.032) / 0.014) ** 2 - ((y - 0.015) / 0.009) ** 2))
    z = cap + nose + brow + eyes - 0.04
    verts = np.stack([x, y, z], -1).reshape(-1, 3).astype(np.float32)
    return verts, grid_faces(rows, cols)


def icosphere(subdivisions: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Unit geodesic sphere: ``verts (V, 3) float64`` on the sphere, ``faces (F, 3) int64``
    counter-clockwise seen from outside; ``F = 20 · 4^subdivisions``."""
    t = (1 + 5 ** 0.5) / 2
    v = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
         (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
         (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5),
         (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [np.array(p, dtype=np.float64) / np.linalg.norm(p) for p in v]
    faces = [tuple(x) for x in f]
    for _ in range(subdivisions):
        cache: dict[tuple[int, int], int] = {}

        def mid(a: int, b: int) -> int:
            key = (min(a, b), max(a, b))
            if key not in cache:
                m = verts[a] + verts[b]
                verts.append(m / np.linalg.norm(m))
                cache[key] = len(verts) - 1
            return cache[key]

        new = []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.array(verts), np.array(faces, dtype=np.int64)
