"""MediaPipe FaceMesh (468/478 points) → the 68 iBUG/300W landmarks, and the 5 alignment points.

How the 68 points are derived (no fitting to any evaluation set)
---------------------------------------------------------------
"Left"/"right" below are the *subject's*; for a frontal face the subject's right is on the
image left. iBUG numbering is 0-based (0-16 jaw, 17-21 right brow, 22-26 left brow, 27-30 nose
bridge, 31-35 nose base, 36-41 right eye, 42-47 left eye, 48-59 outer lips, 60-67 inner lips).

* Anatomical points map to the MediaPipe vertex with the same anatomical meaning: eye
  corners 36/39/42/45 = 33/133/362/263; mouth corners 48/54 = 61/291 (outer) and 60/64 = 78/308
  (inner); lip mid-points 51/57 = 0/17 (outer) and 62/66 = 13/14 (inner); nose tip 30 = 4
  (the tip as seen from the front; vertex 1, the most anterior point, projects ~0.11 inter-ocular
  distances lower, below the 5-point labels' nose); subnasale 33 = 2; nasion 27 = 168.
* iBUG points defined as evenly spaced along a contour are placed at the same fractional
  position along MediaPipe's own contour (the index sequences of ``FACEMESH_LEFT_EYE``,
  ``FACEMESH_LIPS``, …). 300W puts 50/52 on the cupid's-bow peaks (MediaPipe 37/267) and
  49/53 midway between corner and peak: along the upper-lip contour 61-185-40-39-37 that is
  vertex 40 (270 on the other side); the lower lip 61-146-91-181-84-17 (10 steps corner to
  corner) takes 55-59 at 1/6 … 5/6: 321, 405, 17, 181, 91. Where the fraction falls between
  two vertices the point is their mean (inner
  lips 61/63/65/67, ``_PAIRS``). Eyelids 37/38/40/41 = 160/158/153/144 (1/3, 2/3 along the 8-step lids);
  brows use the upper brow contour 70-63-105-66-107 / 336-296-334-293-300 (300W annotates the
  brow's upper edge); nose bridge 28/29 = 197/195 (1/3, 2/3 of 168→6→197→195→5→4); nose base
  31/32 = 98/97 and 34/35 = 326/327 (alar base → subnasale).
* Jaw 0-16: MediaPipe's face oval is the face silhouette, which is what the 300W jaw
  contour follows. Points 0 and 16 are the oval vertices at the height of the outer eye
  corners (127 and 356, checked on real photos), 8 is the chin (152); 1-7 and 9-15 are spaced
  evenly by *3-D arc length* along the oval path 127→…→152 and 152→…→356, using the mesh's
  own 3-D coordinates so that the points stay on the same anatomy under yaw.

Verified on the 25 ``faces/deep3d-examples`` photos against their 5-point labels (tests:
``tests/recon_cli/test_face_landmarks.py``) and by eye on ``recon prep --preview`` grids.
"""

from __future__ import annotations

import numpy as np

# Single-vertex correspondences: iBUG index → MediaPipe vertex.
_SINGLE = {
    # right brow (image left) outer → inner, left brow inner → outer
    17: 70, 18: 63, 19: 105, 20: 66, 21: 107, 22: 336, 23: 296, 24: 334, 25: 293, 26: 300,
    # nose bridge and base
    27: 168, 28: 197, 29: 195, 30: 4, 31: 98, 32: 97, 33: 2, 34: 326, 35: 327,
    # right eye: outer corner, upper lid ×2, inner corner, lower lid ×2
    36: 33, 37: 160, 38: 158, 39: 133, 40: 153, 41: 144,
    # left eye: inner corner, upper lid ×2, outer corner, lower lid ×2
    42: 362, 43: 385, 44: 387, 45: 263, 46: 373, 47: 380,
    # outer lips: 48 right corner → upper → 54 left corner → lower
    48: 61, 49: 40, 50: 37, 51: 0, 52: 267, 53: 270, 54: 291, 55: 321, 56: 405, 57: 17, 58: 181, 59: 91,
    # inner lips
    60: 78, 62: 13, 64: 308, 66: 14,
}
# Points midway between two contour vertices (fraction 1/2 between them).
_PAIRS = {61: (81, 80), 63: (311, 310), 65: (402, 318), 67: (178, 88)}

# Face-oval path (MediaPipe FACEMESH_FACE_OVAL order) from the right-eye-level vertex via the
# chin to the left-eye-level vertex.
JAW_PATH_RIGHT = (127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152)
JAW_PATH_LEFT = (152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356)

FIVE_NAMES = ("eye_image_left", "eye_image_right", "nose_tip", "mouth_image_left", "mouth_image_right")

#: iBUG 68 mirror order: after a horizontal flip point ``k`` of the mirrored face is point
#: ``MIRROR68[k]`` of the original (jaw, brows, nose bridge, nostrils, eyes, outer lips, inner lips).
MIRROR68 = np.array(
    list(range(16, -1, -1))
    + list(range(26, 21, -1)) + list(range(21, 16, -1))
    + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65])
#: The 5 alignment points (:data:`FIVE_NAMES`) in mirror order: image-left and image-right swap.
MIRROR5 = np.array([1, 0, 2, 4, 3])


def _resample(path: np.ndarray, n: int) -> np.ndarray:
    """``path: (K, D)`` polyline → ``(n, D)`` points evenly spaced by arc length (ends included)."""
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(t, s, path[:, d]) for d in range(path.shape[1])], 1)


def _map68(mesh: np.ndarray, dims: int) -> np.ndarray:
    """The 68 points ``(68, dims) float64`` from a MediaPipe mesh; the jaw spaced by arc length in
    ``mesh``'s own coordinates (all of them, so 3-D when the mesh is 3-D)."""
    mesh = np.asarray(mesh, dtype=np.float64)
    out = np.zeros((68, dims), np.float64)
    for k, v in _SINGLE.items():
        out[k] = mesh[v, :dims]
    for k, (a, b) in _PAIRS.items():
        out[k] = 0.5 * (mesh[a, :dims] + mesh[b, :dims])
    out[0:9] = _resample(mesh[list(JAW_PATH_RIGHT)], 9)[:, :dims]
    out[8:17] = _resample(mesh[list(JAW_PATH_LEFT)], 9)[:, :dims]
    return out


def mesh_to_68(mesh: np.ndarray) -> np.ndarray:
    """``mesh: (468|478, 3) float`` MediaPipe points (x, y px, z relative px) → ``(68, 2) float32`` px.

    Also accepts ``(468|478, 2)``; the jaw is then spaced by 2-D arc length.
    """
    return _map68(mesh, 2).astype(np.float32)


def mesh_to_68_3d(mesh: np.ndarray) -> np.ndarray:
    """``mesh: (468|478, 3)`` → ``(68, 3) float64``: the same 68 points in the mesh's own 3-D frame
    (e.g. MediaPipe's canonical face, cm), for comparing landmark conventions in 3-D."""
    mesh = np.asarray(mesh)
    if mesh.ndim != 2 or mesh.shape[1] != 3 or mesh.shape[0] < 468:
        raise ValueError(f"expected a (468|478, 3) mesh, got {mesh.shape}")
    return _map68(mesh, 3)


def five_from_68(lm68: np.ndarray) -> np.ndarray:
    """``(…, 68, 2)`` → ``(…, 5, 2)``: eye centres (mean of 36-41, 42-47), nose tip 30, mouth
    corners 48, 54; in the order of :data:`FIVE_NAMES` (image-left eye first for a frontal face)."""
    lm68 = np.asarray(lm68)
    return np.stack([lm68[..., 36:42, :].mean(-2), lm68[..., 42:48, :].mean(-2), lm68[..., 30, :],
                     lm68[..., 48, :], lm68[..., 54, :]], -2).astype(lm68.dtype, copy=False)
