"""The jaw-contour convention of AFLW2000-3D's ground truth, for a morphable model other than the BFM.

AFLW2000-3D's 68 points come from 3DDFA's fits of the Basel Face Model: on a turned face the jaw
points on the far (hidden) side are the BFM's own 3-D contour vertices, seen through the head,
while the near side stays on the visible outline. ICT-FaceKit's 68 landmark vertices
(``idx_to_landmark_verts``) are a fitting convention whose jaw points lie 2.4–3.0 cm further
forward than the BFM's (measured with :func:`template_in_model_frame`: the BFM 68-point
template, aligned by a similarity on the 51 inner points 17–67 (0.34 cm rms), against the ICT mean
shape). On a profile that depth difference projects to ~17 % of the face box on the hidden side
only, which is what the shipped encoder's AFLW2000-3D residuals showed (README, model card).

:class:`HiddenContour` applies the BFM convention where it differs: a jaw landmark (0–16) whose
mean-shape vertex normal, turned by the predicted head pose, faces away from the camera centre
moves by the fixed model-space offset (BFM template point − ICT landmark), so it is scored at the
BFM contour's depth; visible jaw points and the 51 inner points are unchanged. The rule has no
free parameter and uses no benchmark data: only the BFM's mean 68-point template
(Deep3DFaceRecon's ``BFM/similarity_Lm3D_all.mat``, key ``lm``, ``(68, 3)``, iBUG order), which is
read at run time and never shipped.

Frames: model space (metres; at zero pose x towards image right, y up, z towards the camera); world = ``R·v + t`` with the crop camera's centre at ``(0, 0, distance)``
(:func:`recon_cli.pipeline.reconstruct.crop_geometry`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon_cli.errors import InputError

TEMPLATE_FILE = "similarity_Lm3D_all.mat"
JAW = np.arange(17)
INNER = np.arange(17, 68)  # brows, nose, eyes, mouth: where the two conventions agree (0.34 cm rms)


def default_template_path(aflw_dir: str | Path) -> Path:
    """Where the development data keeps the template: ``<aflw2000-3d>/../bfm-topology/``."""
    return Path(aflw_dir).resolve().parent / "bfm-topology" / TEMPLATE_FILE


def load_bfm_template(path: str | Path) -> np.ndarray:
    """The BFM mean-shape 68 landmarks ``(68, 3) float64`` (any unit) from a ``.mat`` with key ``lm``."""
    path = Path(path)
    hint = (f"pass --bfm-template PATH to Deep3DFaceRecon's BFM/{TEMPLATE_FILE}, "
            "or --contour model to score the model's own landmark vertices")
    if not path.is_file():
        raise InputError(f"BFM landmark template not found: {path}", hint=hint)
    try:
        from scipy.io import loadmat

        lm = np.asarray(loadmat(str(path))["lm"], dtype=np.float64)
    except Exception as e:  # noqa: BLE001 (scipy raises several types for a bad file)
        raise InputError(f"{path}: cannot read a 68×3 'lm' array ({type(e).__name__}: {e})", hint=hint) from None
    if lm.shape != (68, 3) or not np.isfinite(lm).all():
        raise InputError(f"{path}: 'lm' is {lm.shape}, expected 68×3 finite landmarks", hint=hint)
    return lm


def similarity_3d(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares ``s, R, t`` with ``s·R·src + t ≈ dst`` (Umeyama; ``(N, 3)`` points, proper rotation)."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    U, S, Vt = np.linalg.svd(b.T @ a)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    s = float((S * np.diag(D)).sum() / (a ** 2).sum())
    return s, R, md - s * R @ ms


def template_in_model_frame(model, template: np.ndarray) -> np.ndarray:
    """The template ``(68, 3)`` mapped into ``model``'s space by the similarity that best aligns its
    inner points 17–67 with the model's mean-shape landmark vertices (metres)."""
    lm = np.asarray(model.mean_shape, dtype=np.float64)[model.landmarks68]
    s, R, t = similarity_3d(template[INNER], lm[INNER])
    return s * template @ R.T + t


@dataclass
class HiddenContour:
    """BFM-depth jaw points where the jaw faces away from the camera (module docstring).

    ``offsets (68, 3)``: metres, model space, zero outside the jaw; ``normals (68, 3)``: unit
    mean-shape vertex normals of the 68 landmark vertices, model space.
    """

    offsets: np.ndarray
    normals: np.ndarray

    @classmethod
    def from_template(cls, model, template: np.ndarray) -> "HiddenContour":
        from recon_cli.mesh.topology import vertex_normals

        mean = np.asarray(model.mean_shape, dtype=np.float64)
        offsets = template_in_model_frame(model, template) - mean[model.landmarks68]
        offsets[INNER] = 0.0
        normals = vertex_normals(mean, np.asarray(model.triangles))[model.landmarks68]
        return cls(offsets=offsets, normals=normals)

    def hidden(self, lm_model: np.ndarray, R: np.ndarray, trans: np.ndarray, distance: float) -> np.ndarray:
        """``(N, 68) bool``: jaw landmarks whose turned normal points away from the camera centre.

        ``lm_model (N, 68, 3)`` m, ``R (N, 3, 3)``, ``trans (N, 3)`` m, ``distance`` m."""
        world = np.einsum("bvj,bij->bvi", lm_model, R) + trans[:, None]
        n_world = np.einsum("vj,bij->bvi", self.normals, R)
        to_cam = np.array([0.0, 0.0, distance]) - world
        out = (n_world * to_cam).sum(-1) < 0
        out[:, INNER] = False
        return out

    def apply(self, lm_model: np.ndarray, R: np.ndarray, trans: np.ndarray, distance: float) -> np.ndarray:
        """The 68 landmarks ``(N, 68, 3)`` model space, hidden jaw points moved to the BFM contour."""
        h = self.hidden(lm_model, R, trans, distance)
        return lm_model + self.offsets[None] * h[..., None]
