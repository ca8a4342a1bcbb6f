"""Mesh writers: Wavefront ``.obj`` (ASCII) and ``.ply`` (binary little-endian), with optional
per-vertex colour, always written atomically (:mod:`recon_cli.atomic`). Torch-free.

Inputs: ``verts (V, 3)`` float (any unit; the project writes metres in model or camera space),
``faces (F, 3)`` int, 0-based, counter-clockwise from outside; ``colors (V, 3)`` float in
[0, 1] (clipped; written as floats in ``.obj`` — the common ``v x y z r g b`` extension that
MeshLab, Blender and Open3D read — and as ``uchar`` red/green/blue in ``.ply``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon_cli.atomic import atomic_open
from recon_cli.errors import InputError

MESH_SUFFIXES = (".obj", ".ply")


def _check(verts, faces, colors):
    verts = np.asarray(verts, dtype=np.float64)
    faces = np.asarray(faces)
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise ValueError(f"verts must be (V, 3), got {verts.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or (faces.size and not np.issubdtype(faces.dtype, np.integer)):
        raise ValueError(f"faces must be (F, 3) integer, got {faces.shape} {faces.dtype}")
    faces = faces.astype(np.int64)
    if faces.size and (faces.min() < 0 or faces.max() >= len(verts)):
        raise ValueError(f"faces index vertices outside [0, {len(verts)})")
    if not np.isfinite(verts).all():
        raise ValueError("verts contain NaN or Inf")
    if colors is not None:
        colors = np.asarray(colors, dtype=np.float64)
        if colors.shape != verts.shape:
            raise ValueError(f"colors must be (V, 3) = {verts.shape}, got {colors.shape}")
        colors = np.clip(np.nan_to_num(colors, nan=0.0), 0.0, 1.0)
    return verts, faces, colors


def write_obj(path: str | Path, verts, faces, colors=None, header: str | None = None) -> Path:
    """ASCII Wavefront OBJ: ``v x y z [r g b]`` and 1-based ``f a b c``. Returns ``path``."""
    path = Path(path)
    verts, faces, colors = _check(verts, faces, colors)
    lines = [f"# {ln}" for ln in (header or "written by recon").splitlines()]
    if colors is None:
        lines += [f"v {x:.7g} {y:.7g} {z:.7g}" for x, y, z in verts]
    else:
        lines += [f"v {x:.7g} {y:.7g} {z:.7g} {r:.4f} {g:.4f} {b:.4f}" for (x, y, z), (r, g, b) in zip(verts, colors)]
    lines += [f"f {a} {b} {c}" for a, b, c in faces + 1]
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    return path


def write_ply(path: str | Path, verts, faces, colors=None, comment: str | None = None) -> Path:
    """Binary little-endian PLY: float32 x/y/z, optional uchar red/green/blue, int32 faces."""
    path = Path(path)
    verts, faces, colors = _check(verts, faces, colors)
    vfields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        vfields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vrec = np.empty(len(verts), dtype=vfields)
    vrec["x"], vrec["y"], vrec["z"] = verts.T
    if colors is not None:
        c8 = np.round(colors * 255.0).astype(np.uint8)
        vrec["red"], vrec["green"], vrec["blue"] = c8.T
    frec = np.empty(len(faces), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    frec["n"] = 3
    frec["idx"] = faces
    head = ["ply", "format binary_little_endian 1.0"]
    head += [f"comment {ln}" for ln in (comment or "written by recon").splitlines()]
    head += [f"element vertex {len(verts)}", "property float x", "property float y", "property float z"]
    if colors is not None:
        head += ["property uchar red", "property uchar green", "property uchar blue"]
    head += [f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    with atomic_open(path, "wb") as f:
        f.write(("\n".join(head) + "\n").encode("ascii"))
        f.write(vrec.tobytes())
        f.write(frec.tobytes())
    return path


def write_mesh(path: str | Path, verts, faces, colors=None) -> Path:
    """Write ``.obj`` or ``.ply`` chosen by the extension of ``path``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".obj":
        return write_obj(path, verts, faces, colors)
    if suffix == ".ply":
        return write_ply(path, verts, faces, colors)
    raise InputError(f"cannot write a mesh to {path}: unknown extension {path.suffix or '(none)'!r}",
                     hint=f"use one of {', '.join(MESH_SUFFIXES)}")
