"""Readers for the meshes :mod:`recon_cli.mesh.writers` writes (triangles, optional per-vertex
colour): ``.obj`` (``v x y z [r g b]``, ``f`` with ``a``, ``a/t`` or ``a/t/n`` tokens; polygons
are fanned into triangles) and ``.ply`` (ASCII or binary little/big-endian, vertex x/y/z with
optional red/green/blue, face ``vertex_indices`` lists). Torch-free.

Returns ``(verts (V, 3) float64, faces (F, 3) int64, colors (V, 3) float64 in [0, 1] or None)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon_cli.errors import InputError

_PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
              "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
              "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}


def read_obj(path: str | Path):
    path = Path(path)
    verts, cols, faces = [], [], []
    for ln in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = ln.split()
        if not parts:
            continue
        if parts[0] == "v":
            verts.append([float(x) for x in parts[1:4]])
            if len(parts) >= 7:
                cols.append([float(x) for x in parts[4:7]])
        elif parts[0] == "f":
            idx = [int(t.split("/")[0]) for t in parts[1:]]
            idx = [i - 1 if i > 0 else len(verts) + i for i in idx]
            faces += [[idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1)]
    v = np.asarray(verts, dtype=np.float64).reshape(-1, 3)
    c = np.asarray(cols, dtype=np.float64) if cols and len(cols) == len(verts) else None
    return v, np.asarray(faces, dtype=np.int64).reshape(-1, 3), c


def read_ply(path: str | Path):
    path = Path(path)
    data = path.read_bytes()
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise InputError(f"{path} is not a PLY file (no 'ply' magic or 'end_header')")
    body = data[data.index(b"\n", end) + 1:]
    header = data[:end].decode("ascii", "replace").splitlines()
    fmt, elements = "ascii", []
    for ln in header:
        p = ln.split()
        if not p:
            continue
        if p[0] == "format":
            fmt = p[1]
        elif p[0] == "element":
            elements.append((p[1], int(p[2]), []))
        elif p[0] == "property":
            elements[-1][2].append(p[1:])
    endian = "<" if fmt == "binary_little_endian" else ">"
    out: dict[str, dict[str, np.ndarray]] = {}
    if fmt == "ascii":
        tokens = iter(body.split())
        for name, count, props in elements:
            rows = {pp[-1]: [] for pp in props}
            for _ in range(count):
                for pp in props:
                    if pp[0] == "list":
                        n = int(next(tokens))
                        rows[pp[-1]].append([float(next(tokens)) for _ in range(n)])
                    else:
                        rows[pp[-1]].append(float(next(tokens)))
            out[name] = {k: np.asarray(v) for k, v in rows.items()}
    else:
        off = 0
        for name, count, props in elements:
            if any(pp[0] == "list" for pp in props):  # lists: assume constant length (triangles)
                rows = {pp[-1]: [] for pp in props}
                for _ in range(count):
                    for pp in props:
                        if pp[0] == "list":
                            ct, it = np.dtype(endian + _PLY_TYPES[pp[1]]), np.dtype(endian + _PLY_TYPES[pp[2]])
                            n = int(np.frombuffer(body, ct, 1, off)[0])
                            off += ct.itemsize
                            rows[pp[-1]].append(np.frombuffer(body, it, n, off))
                            off += n * it.itemsize
                        else:
                            t = np.dtype(endian + _PLY_TYPES[pp[0]])
                            rows[pp[-1]].append(np.frombuffer(body, t, 1, off)[0])
                            off += t.itemsize
                out[name] = {k: np.asarray(v) for k, v in rows.items()}
            else:
                dt = np.dtype([(pp[1], endian + _PLY_TYPES[pp[0]]) for pp in props])
                rec = np.frombuffer(body, dt, count, off)
                off += dt.itemsize * count
                out[name] = {pp[1]: rec[pp[1]] for pp in props}
    vx = out.get("vertex", {})
    if not all(k in vx for k in "xyz"):
        raise InputError(f"{path}: PLY has no vertex x/y/z properties")
    verts = np.stack([vx["x"], vx["y"], vx["z"]], 1).astype(np.float64)
    colors = None
    if all(k in vx for k in ("red", "green", "blue")):
        colors = np.stack([vx["red"], vx["green"], vx["blue"]], 1).astype(np.float64) / 255.0
    fc = out.get("face", {})
    lists = fc.get("vertex_indices", fc.get("vertex_index", np.zeros((0, 3))))
    faces = []
    for poly in lists:
        poly = [int(i) for i in poly]
        faces += [[poly[0], poly[k], poly[k + 1]] for k in range(1, len(poly) - 1)]
    return verts, np.asarray(faces, dtype=np.int64).reshape(-1, 3), colors


def read_mesh(path: str | Path):
    """Read ``.obj`` or ``.ply`` by extension (see the module docstring for the return value)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"mesh file not found: {path}")
    if path.suffix.lower() == ".obj":
        return read_obj(path)
    if path.suffix.lower() == ".ply":
        return read_ply(path)
    raise InputError(f"cannot read a mesh from {path}: unknown extension", hint="use .obj or .ply")
