"""ICT-FaceKit (light) importer: the project's shipped default morphable model.

Source: ``FaceXModel/`` as released by ICT-VGL/ICT-FaceKit (MIT), given as the folder, its
parent, the ``ICT-FaceKit-light.tar.xz`` archive (read directly with :mod:`tarfile`) or a
folder holding that archive.

What is kept and why
--------------------
ICT's full head has 26,719 vertices. ICT documents its vertex ranges as face 0–9408, head and
neck 9409–11247, mouth socket 11248–13293, eye sockets 13294–14061, gums and tongue
14062–17038, teeth 17039–21450, eyeballs 21451–24590, lacrimal fluid, eye blend, eye occlusion
and eyelashes 24591–26718. The OBJ's material groups confirm it: ``M_Face`` is exactly quads
0–9229 on vertices 0–9408. A single-image face model must only contain surface that is seen
and that follows the face, like Deep3DFaceRecon's ``BFM_model_front``, so the importer keeps
the ``M_Face`` quads and trims three parts of that region by geometry on the neutral mesh:

* the neck: vertices more than ``chin_margin_cm`` below the jaw line (landmarks 0–16,
  interpolated by azimuth ``atan2(x, z - axis_z_cm)`` about a vertical axis);
* the ears and the sides of the head: azimuth beyond the jaw-line ends (landmarks 0/16) plus
  ``side_margin_deg``;
* the scalp: more than ``forehead_cm`` above the highest eyebrow landmark.

A quad is kept when all four of its vertices are. Quads are split along their shorter diagonal
keeping ICT's winding; ``border_smoothing`` passes then drop border triangles with two border
edges (the staircase the cut leaves); unused vertices are dropped and the triangles re-indexed.
ICT's winding is
counter-clockwise from outside (checked: triangle normals point away from the head's interior
point, +z for the frontal face). The inner eyelid rims, the nostrils and the inner lips stay
(they are part of ICT's face region); the mouth and eye sockets do not, so the mouth is a hole.

Frame and units
---------------
ICT is in centimetres (eye-centre distance 6.5 cm) with +x towards the subject's left (image
right of a frontal view), +y up and +z out of the face: the contract's axes already, so the
importer only scales by 0.01 and subtracts the centroid of the kept neutral vertices.

Bases
-----
* identity: the 100 ``identityNNN.obj`` modes, ``id_basis[k] = identity_k - neutral``. They
  are PCA modes already scaled to one standard deviation: ICT's own ``randomize_identity``
  draws the weights from N(0, 1) and the mode magnitudes decrease with k. So ``id = 1.0`` is
  +1σ of mode k, as the contract wants.
* expression: the 53 blendshapes named in ``vertex_indices.json["expressions"]``, in that order
  (ARKit names, ``_L``/``_R`` = the subject's left/right), ``exp_basis = blendshape - neutral``;
  ``exp = 1.0`` applies the full blendshape (ICT's weights live in [0, 1]).
* albedo: ICT light has none; a synthetic mean skin albedo and an 80-mode smooth basis are
  generated (:mod:`recon_cli.morphable.albedo`).
* landmarks: ``idx_to_landmark_verts`` (68, iBUG/300W order: jaw 0–16 from image-left to
  image-right, brows 17–26, nose 27–35, eyes 36–47, mouth 48–67), re-indexed to kept vertices.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from recon_cli.errors import InputError
from recon_cli.mesh.topology import compact, connected_components, face_normals, triangulate_quads, trim_spikes
from recon_cli.morphable.albedo import AlbedoConfig, mean_albedo, texture_basis
from recon_cli.morphable.ict_source import ICTSource, open_ict_source
from recon_cli.morphable.model import MorphableModel

Progress = Callable[[str, int, int], None]

FACE_VERTS = 9409  # ICT face region: vertices [0, 9409)
FACE_MATERIAL = "M_Face"
CM_TO_M = 0.01
HINT = ("download ICT-FaceKit from https://github.com/ICT-VGL/ICT-FaceKit (the FaceXModel folder "
        "or the ICT-FaceKit-light archive) and pass the folder or the .tar.xz")


@dataclass(frozen=True)
class ICTImportConfig:
    """Importer settings (ICT centimetres / degrees); stored in the model's ``meta``."""

    chin_margin_cm: float = 1.0
    side_margin_deg: float = 3.0
    forehead_cm: float = 4.5
    axis_z_cm: float = 0.0
    border_smoothing: int = 2
    n_id: int = 100
    n_tex: int = 80
    albedo: AlbedoConfig = field(default_factory=AlbedoConfig)


def _runs(idx: np.ndarray) -> list[list[int]]:
    """Sorted indices → ``[[start, stop), …]`` runs (compact record of the kept ICT vertices)."""
    if len(idx) == 0:
        return []
    breaks = np.nonzero(np.diff(idx) != 1)[0]
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    stops = np.concatenate([idx[breaks] + 1, [idx[-1] + 1]])
    return [[int(a), int(b)] for a, b in zip(starts, stops)]


def _check_landmarks(lm_xyz: np.ndarray, where: str) -> None:
    """Raise if the 68 landmarks are not in iBUG order in the contract frame."""
    x, z = lm_xyz[:, 0], lm_xyz[:, 2]
    problems = []
    if not np.all(np.diff(x[:9]) > 0) or not np.all(np.diff(x[8:17]) > 0):
        problems.append("jaw 0-16 does not run from image-left to image-right")
    if not (x[36] < x[39] < 0 < x[42] < x[45]):
        problems.append("eye corners 36/39/42/45 are not ordered left to right")
    if not (x[48] < 0 < x[54]):
        problems.append("mouth corners 48/54 are not left/right")
    if int(np.argmax(z)) != 30:
        problems.append("nose tip 30 is not the most frontal landmark")
    if problems:
        raise InputError(f"{where}: idx_to_landmark_verts is not in the expected iBUG order: " + "; ".join(problems),
                         hint=HINT)


def face_crop_mask(neutral_cm: np.ndarray, lm_cm: np.ndarray, cfg: ICTImportConfig) -> np.ndarray:
    """Which face-region vertices to keep (see the module docstring): ``(N,) bool``.

    ``neutral_cm (N, 3)`` the face-region vertices, ``lm_cm (68, 3)`` the landmarks, both cm.
    """
    def azimuth(p):
        return np.degrees(np.arctan2(p[:, 0], p[:, 2] - cfg.axis_z_cm))

    az_jaw, y_jaw = azimuth(lm_cm[:17]), lm_cm[:17, 1]
    az = azimuth(neutral_cm)
    y_limit = np.interp(az, az_jaw, y_jaw) - cfg.chin_margin_cm
    keep = neutral_cm[:, 1] >= y_limit
    keep &= np.abs(az) <= np.abs(az_jaw[[0, 16]]).max() + cfg.side_margin_deg
    keep &= neutral_cm[:, 1] <= lm_cm[17:27, 1].max() + cfg.forehead_cm
    return keep


def build_ict_model(src: str | Path, cfg: ICTImportConfig = ICTImportConfig(),
                    progress: Progress | None = None) -> MorphableModel:
    """Read ICT-FaceKit from ``src`` and convert it (see the module docstring)."""
    progress = progress or (lambda stage, done, total: None)
    data: ICTSource = open_ict_source(src, progress=progress, hint=HINT)
    where = data.label

    neutral = data.neutral[:FACE_VERTS]
    if data.face_quads.max() >= FACE_VERTS:
        raise InputError(f"{where}: {FACE_MATERIAL} quads use vertices beyond ICT's face region [0, {FACE_VERTS})",
                         hint=HINT)
    lm_full = data.landmarks
    if lm_full.max() >= FACE_VERTS:
        raise InputError(f"{where}: landmark vertex {int(lm_full.max())} is outside ICT's face region [0, {FACE_VERTS})",
                         hint=HINT)
    _check_landmarks(neutral[lm_full], where)

    progress("building mesh", 0, 1)
    keep_v = face_crop_mask(neutral, neutral[lm_full], cfg)
    if not keep_v[lm_full].all():
        raise InputError(f"{where}: the face crop would drop landmark vertices; adjust the crop margins", hint=HINT)
    quads = data.face_quads[keep_v[data.face_quads].all(axis=1)]
    tris = trim_spikes(triangulate_quads(quads, neutral), cfg.border_smoothing, protect=lm_full)
    kept, tris = compact(tris, FACE_VERTS)
    remap = np.full(FACE_VERTS, -1, dtype=np.int64)
    remap[kept] = np.arange(len(kept))
    landmarks = remap[lm_full]
    if (landmarks < 0).any():
        raise InputError(f"{where}: a landmark vertex is not on any kept face quad", hint=HINT)

    mean_cm = neutral[kept]
    labels = connected_components(tris, len(kept))
    if labels.max() != 0:
        raise InputError(f"{where}: the kept face region is not one connected piece", hint=HINT)
    # Winding: ICT's quads are counter-clockwise from outside; verify against an interior point.
    interior = data.neutral.mean(axis=0)
    centres = mean_cm[tris].mean(axis=1)
    outward = float(np.mean(np.einsum("ij,ij->i", face_normals(mean_cm, tris), centres - interior) > 0))
    if outward < 0.5:
        tris = tris[:, ::-1]
        outward = 1.0 - outward

    centre_cm = mean_cm.mean(axis=0)
    mean_shape = (mean_cm - centre_cm) * CM_TO_M
    id_basis = np.stack([m[:FACE_VERTS][kept] - mean_cm for m in data.identities[: cfg.n_id]]) * CM_TO_M
    exp_basis = np.stack([data.expressions[n][:FACE_VERTS][kept] - mean_cm for n in data.exp_names]) * CM_TO_M

    progress("albedo basis", 0, 1)
    albedo = mean_albedo(mean_shape, tris, landmarks, cfg.albedo)
    tex = texture_basis(mean_shape, tris, albedo, cfg.n_tex, cfg.albedo)
    progress("albedo basis", 1, 1)

    licence = ("ICT-FaceKit (Copyright (c) 2020 USC Institute for Creative Technologies), MIT License; "
               "face region, metres and synthetic albedo derived by recon's importer.\n\n" + data.licence)
    meta = {
        "importer": "ict", "exp_kind": "blendshapes", "config": asdict(cfg), "units_in_source": "cm",
        "source_face_vertices": [0, FACE_VERTS], "kept_source_vertices": _runs(kept),
        "centre_source_cm": [round(float(c), 4) + 0.0 for c in centre_cm],
        "outward_triangle_fraction": round(outward, 4),
        "coefficients": {"id": "1.0 = +1 standard deviation of ICT identity mode k",
                         "exp": "1.0 = the full ICT blendshape", "tex": "1.0 = 1 std of the synthetic albedo mode"},
    }
    return MorphableModel(
        name="ict-facekit", mean_shape=mean_shape, id_basis=id_basis, exp_basis=exp_basis,
        mean_albedo=albedo, tex_basis=tex, triangles=tris, landmarks68=landmarks, units="m",
        licence=licence, source=data.source_name, exp_names=list(data.exp_names), meta=meta)


def import_ict(src: str | Path, out: str | Path, cfg: ICTImportConfig = ICTImportConfig(),
               progress: Progress | None = None) -> MorphableModel:
    """Build the model from ``src`` and save it to ``out`` (atomically, deterministic bytes)."""
    model = build_ict_model(src, cfg, progress)
    model.save(out)
    return model

