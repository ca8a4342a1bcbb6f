"""Reading ICT-FaceKit's released files from a folder or directly from its ``.tar.xz``.

Accepted sources: the ``FaceXModel`` folder, a folder containing ``FaceXModel/``, an archive
(``.tar.xz``/``.tar.gz``/``.tar``) containing ``FaceXModel/``, or a folder holding exactly one
such archive. The archive is streamed once (xz has no random access) and never extracted.
"""

from __future__ import annotations

import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from recon_cli.errors import InputError

N_HEAD_VERTS = 26719
_ID_RE = re.compile(r"identity(\d{3})\.obj$")
_ARCHIVE_SUFFIXES = (".tar.xz", ".txz", ".tar.gz", ".tgz", ".tar")


@dataclass
class ICTSource:
    """Parsed ICT-FaceKit data, all in ICT's units (cm) and frame.

    neutral: ``(26719, 3) float64``; identities: list of ``(26719, 3)`` (identity000…);
    expressions: name → ``(26719, 3)``; exp_names: the 53 names of ``vertex_indices.json``;
    face_quads: ``(Q, 4) int64`` the ``M_Face`` quads (0-based); landmarks: ``(68,) int64``.
    """

    label: str
    source_name: str
    neutral: np.ndarray
    face_quads: np.ndarray
    identities: list[np.ndarray]
    expressions: dict[str, np.ndarray]
    exp_names: list[str]
    landmarks: np.ndarray
    licence: str


def parse_obj_vertices(text: str, where: str) -> np.ndarray:
    """``v x y z`` lines → ``(N, 3) float64``."""
    lines = [ln[2:] for ln in text.splitlines() if ln.startswith("v ")]
    try:
        v = np.array(" ".join(lines).split(), dtype=np.float64).reshape(-1, 3)
    except ValueError:
        raise InputError(f"{where}: malformed vertex lines (expected 'v x y z')") from None
    if len(v) != N_HEAD_VERTS:
        raise InputError(f"{where}: has {len(v)} vertices, ICT-FaceKit meshes have {N_HEAD_VERTS}",
                         hint="use the unmodified FaceXModel files of ICT-FaceKit (light)")
    return v


def parse_obj_material_faces(text: str, material: str, where: str) -> np.ndarray:
    """Faces of ``usemtl material`` → ``(Q, 4) int64`` 0-based (quads only)."""
    faces, current = [], None
    for ln in text.splitlines():
        if ln.startswith("usemtl"):
            current = ln.split()[1] if len(ln.split()) > 1 else None
        elif ln.startswith("f ") and current == material:
            faces.append([int(t.split("/")[0]) - 1 for t in ln.split()[1:]])
    if not faces:
        raise InputError(f"{where}: no faces with material {material}")
    if any(len(f) != 4 for f in faces):
        raise InputError(f"{where}: material {material} has non-quad faces; expected ICT's quad face region")
    return np.asarray(faces, dtype=np.int64)


def _iter_folder(root: Path) -> Iterator[tuple[str, bytes]]:
    fx = root / "FaceXModel"
    for p in sorted(fx.iterdir()):
        if p.is_file():
            yield f"FaceXModel/{p.name}", p.read_bytes()
    lic = root / "LICENSE"
    if lic.is_file():
        yield "LICENSE", lic.read_bytes()


def _iter_tar(path: Path) -> Iterator[tuple[str, bytes]]:
    try:
        with tarfile.open(path, "r:*") as tf:
            for m in tf:
                if m.isfile():
                    name = m.name[2:] if m.name.startswith("./") else m.name
                    f = tf.extractfile(m)
                    if f is not None:
                        yield name, f.read()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise InputError(f"{path}: not a readable tar archive ({e})",
                         hint="download ICT-FaceKit-light again; the archive looks damaged") from None


def _resolve(src: Path, hint: str) -> tuple[str, Callable[[], Iterator[tuple[str, bytes]]], str]:
    if not src.exists():
        raise InputError(f"ICT-FaceKit source not found: {src}", hint=hint)
    if src.is_file():
        if not src.name.endswith(_ARCHIVE_SUFFIXES):
            raise InputError(f"{src}: expected an ICT-FaceKit folder or a .tar.xz archive", hint=hint)
        return str(src), lambda: _iter_tar(src), src.name
    if (src / "generic_neutral_mesh.obj").is_file():
        src = src.parent
    if (src / "FaceXModel").is_dir():
        return str(src / "FaceXModel"), lambda: _iter_folder(src), "FaceXModel/"
    archives = sorted(p for p in src.iterdir() if p.is_file() and p.name.endswith(_ARCHIVE_SUFFIXES))
    if len(archives) == 1:
        return str(archives[0]), lambda: _iter_tar(archives[0]), archives[0].name
    found = "no archive" if not archives else f"{len(archives)} archives"
    raise InputError(f"{src}: no FaceXModel/ folder and {found} (expected exactly one ICT-FaceKit .tar.xz)", hint=hint)


def open_ict_source(src: str | Path, progress: Callable[[str, int, int], None], hint: str) -> ICTSource:
    """Stream and parse every needed file of ``src`` once."""
    label, iterate, source_name = _resolve(Path(src), hint)
    texts: dict[str, str] = {}
    meshes: dict[str, np.ndarray] = {}
    licence = ""
    expected = 1 + 100 + 53 + 2  # neutral, identities, expressions, json, LICENSE (approximate)
    done = 0
    for name, data in iterate():
        base = name.split("/")[-1]
        if name == "LICENSE" or (name.endswith("/LICENSE") and "FaceXModel" not in name):
            licence = data.decode("utf-8", "replace")
        elif not name.startswith("FaceXModel/") and "/FaceXModel/" not in name:
            continue
        elif base == "vertex_indices.json":
            texts[base] = data.decode("utf-8", "replace")
        elif base == "generic_neutral_mesh.obj":
            texts[base] = data.decode("utf-8", "replace")
            meshes[base] = parse_obj_vertices(texts[base], f"{label}: {base}")
        elif base.endswith(".obj"):
            meshes[base] = parse_obj_vertices(data.decode("utf-8", "replace"), f"{label}: {base}")
        else:
            continue
        done += 1
        progress("reading ICT-FaceKit", min(done, expected), expected)

    for need in ("generic_neutral_mesh.obj", "vertex_indices.json"):
        if need not in texts:
            raise InputError(f"{label}: FaceXModel/{need} is missing", hint=hint)
    try:
        idx = json.loads(texts["vertex_indices.json"])
        exp_names = [str(n) for n in idx["expressions"]]
        landmarks = np.asarray(idx["idx_to_landmark_verts"], dtype=np.int64)
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"{label}: FaceXModel/vertex_indices.json is malformed or lacks "
                         f"'expressions'/'idx_to_landmark_verts' ({e})", hint=hint) from None
    if landmarks.shape != (68,):
        raise InputError(f"{label}: idx_to_landmark_verts has {landmarks.size} entries, expected 68", hint=hint)
    ids = sorted((int(m.group(1)), k) for k in meshes if (m := _ID_RE.match(k)))
    if [i for i, _ in ids] != list(range(len(ids))) or not ids:
        raise InputError(f"{label}: identity modes must be identity000.obj … identityNNN.obj without gaps "
                         f"(found {len(ids)})", hint=hint)
    missing = [n for n in exp_names if f"{n}.obj" not in meshes]
    if missing:
        raise InputError(f"{label}: expression blendshapes missing: {', '.join(missing[:5])}"
                         + (" …" if len(missing) > 5 else ""), hint=hint)
    if not licence:
        head = [ln.strip("# ").rstrip("#").strip() for ln in texts["generic_neutral_mesh.obj"].splitlines()[:30]
                if ln.startswith("#")]
        licence = "\n".join(ln for ln in head if ln)
    quads = parse_obj_material_faces(texts["generic_neutral_mesh.obj"], "M_Face", f"{label}: generic_neutral_mesh.obj")
    return ICTSource(
        label=label, source_name=f"{source_name} (ICT-FaceKit light: FaceXModel)",
        neutral=meshes["generic_neutral_mesh.obj"], face_quads=quads,
        identities=[meshes[k] for _, k in ids], expressions={n: meshes[f"{n}.obj"] for n in exp_names},
        exp_names=exp_names, landmarks=landmarks, licence=licence)
