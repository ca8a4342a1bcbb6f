"""5-point similarity alignment: original image → the square crop the encoder sees (torch-free).

The five points, in image terms (for a frontal face; see
:data:`recon_cli.face.landmarks68.FIVE_NAMES`): 0 the eye centre on the image left (the
subject's right eye), 1 the eye centre on the image right, 2 the nose tip, 3 the mouth corner on
the image left, 4 the mouth corner on the image right.

Template
--------
:data:`TEMPLATE_5` (224×224 crop pixels) is where the default morphable model's mean face
lands at zero pose: the model's 68 mean-shape landmarks → 5 points (eye centres = mean of
36-41 / 42-47, nose tip 30, mouth corners 48 / 54) → :func:`recon_cli.render.camera.project`
with the default :class:`~recon_cli.render.camera.CameraConfig` at angles = trans = 0. Aligning
an image to it means that the untrained encoder's output (zero coefficients = mean face, frontal,
trans 0) already overlays the face; :func:`compute_template` recomputes it (a test checks the
constant against the shipped model).

``AlignConfig.scale`` > 1 makes the face fill more of the crop; it is the same as multiplying
the camera focal length by ``scale`` (the template is scaled about the principal point), so
:func:`crop_camera` gives the camera to render with, and ``recon prep`` records it.

Pixel convention (as in :mod:`recon_cli.render.camera`): origin at the top-left corner of the
top-left pixel, pixel (i, j) centred at (j + 0.5, i + 0.5). ``M`` below always maps *original
image* pixels to *crop* pixels in this convention: ``[u, v] = M @ [x, y, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon_cli.render.camera import CameraConfig

#: 5-point template for a 224×224 crop with the default camera (see the module docstring),
#: computed by ``compute_template()`` from the shipped ICT-FaceKit model (content hash
#: bf56fa1dcf2fe332). At this template the mean face spans x 41-183 px and y 16-206 px of the
#: crop (forehead to chin inside, ~64 % of the width), so no extra scale is needed by default.
TEMPLATE_5 = np.array([
    [79.0395, 88.1993],
    [144.9611, 88.1985],
    [112.0000, 119.2212],
    [86.0820, 159.1481],
    [137.9180, 159.1481],
], dtype=np.float64)
TEMPLATE_SIZE = 224


@dataclass(frozen=True)
class AlignConfig:
    """Crop settings.

    Attributes:
        size: crop side in pixels (the template and camera scale with it).
        scale: face size factor (1.0 = the model's mean face at the default camera); equivalent
            to multiplying the camera focal length.
        border: ``"constant"`` (black) or ``"replicate"`` padding where the crop leaves the image.
        source_scale: crop px per source px of the faces the encoder was trained on (the median
            over its training split, recorded in the weights as ``meta["source_scale"]``; v1.9:
            1.83, its training faces were ~77 px photos enlarged into the 224 crop). A photo in
            which the face is *sharper* than that (alignment scale below ``source_scale``) is first
            resampled, area-averaged, to that resolution, so the crop holds the detail the encoder
            learned from and no finer (:func:`resample_source`). ``None``: crop straight from
            the photo (how training crops are made).
    """

    size: int = 224
    scale: float = 1.0
    border: str = "constant"
    source_scale: float | None = None


@dataclass
class Aligned:
    """An aligned crop. ``crop: (size, size, 3) uint8`` (same channel order as the input);
    ``M: (2, 3) float64`` original → crop px; ``M_inv: (2, 3)`` crop → original px."""

    crop: np.ndarray
    M: np.ndarray
    M_inv: np.ndarray


def compute_template(model=None, cam: CameraConfig | None = None) -> np.ndarray:
    """Project ``model``'s (default: the shipped model) mean 5 points at zero pose → ``(5, 2)`` px."""
    from recon_cli.face.landmarks68 import five_from_68
    from recon_cli.render.camera import project

    if model is None:
        from recon_cli.morphable import load_default_model

        model = load_default_model()
    cam = cam or CameraConfig()
    lm68 = model.mean_shape[model.landmarks68].astype(np.float64)
    uv, _ = project(lm68[None], cam)  # angles = trans = 0: world = model space
    return five_from_68(uv[0]).astype(np.float64)


def template(cfg: AlignConfig = AlignConfig()) -> np.ndarray:
    """The 5-point template for ``cfg`` (size and face scale applied) → ``(5, 2) float64`` px."""
    cam = crop_camera(cfg)
    base = CameraConfig().scaled(cfg.size)
    return np.array([cam.cx, cam.cy]) + cfg.scale * (TEMPLATE_5 * cfg.size / TEMPLATE_SIZE - [base.cx, base.cy])


def crop_camera(cfg: AlignConfig = AlignConfig()) -> CameraConfig:
    """The camera whose zero-pose mean-face projection matches :func:`template` (focal × scale)."""
    base = CameraConfig().scaled(cfg.size)
    return CameraConfig(base.size, base.focal * cfg.scale, base.cx, base.cy, base.distance)


def umeyama_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) taking
    ``src (N, 2)`` onto ``dst (N, 2)`` (Umeyama 1991) → ``M (2, 3) float64``; NaN rows are ignored."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ok = np.isfinite(src).all(1) & np.isfinite(dst).all(1)
    src, dst = src[ok], dst[ok]
    if len(src) < 2:
        raise ValueError("need at least 2 finite point pairs for a similarity transform")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0 ** 2).sum() / len(src)
    cov = d0.T @ s0 / len(src)
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(2)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[1, 1] = -1.0
    R = U @ S @ Vt
    scale = (D * np.diag(S)).sum() / var_s
    t = mu_d - scale * R @ mu_s
    return np.hstack([scale * R, t[:, None]])


def invert_affine(M: np.ndarray) -> np.ndarray:
    """Inverse of a ``(2, 3)`` affine map."""
    A = np.vstack([M, [0.0, 0.0, 1.0]])
    return np.linalg.inv(A)[:2]


def transform_points(pts: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Apply ``M (2, 3)`` to ``pts (..., 2)`` → ``(..., 2)`` (NaN stays NaN)."""
    pts = np.asarray(pts, np.float64)
    return pts @ M[:, :2].T + M[:, 2]


def warp(image: np.ndarray, M: np.ndarray, size: int, border: str = "constant",
         interpolation: int | None = None) -> np.ndarray:
    """Resample ``image`` into a ``size × size`` crop with ``M`` (original → crop, our pixel
    convention). OpenCV puts pixel centres at integers, so ``M`` is conjugated by a half-pixel shift."""
    import cv2

    M_cv = M.copy()
    M_cv[:, 2] += M[:, :2].sum(1) * 0.5 - 0.5  # u_cv = M·(x_cv + ½) − ½
    flags = cv2.INTER_LINEAR if interpolation is None else interpolation
    mode = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE}.get(border)
    if mode is None:
        raise ValueError(f"border must be 'constant' or 'replicate', got {border!r}")
    return cv2.warpAffine(image, M_cv, (size, size), flags=flags, borderMode=mode, borderValue=0)


def similarity_scale(M: np.ndarray) -> float:
    """The uniform scale of a similarity ``M (2, 3)``: crop px per source px."""
    return float(np.hypot(M[0, 0], M[1, 0]))


def resample_source(image: np.ndarray, M: np.ndarray, ratio: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The part of ``image`` a ``size × size`` crop through ``M`` covers, shrunk by ``ratio`` (< 1)
    with area averaging → ``(smaller image, M' mapping its px → crop px)``.

    Warping the result with ``M'`` gives the crop geometry of ``M`` exactly (same coordinates) but
    the detail of a photo ``ratio`` times smaller. Only the covered region (+2 px) is resampled, so
    the cost does not grow with the photo. Pixel convention: centres at ``j + ½`` (a region
    ``[x0, x1)`` maps onto ``[0, nw)`` by ``(x − x0)·nw/(x1 − x0)``, which is also OpenCV's resize).
    """
    import cv2

    h, w = image.shape[:2]
    corners = transform_points(np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64), invert_affine(M))
    x0, y0 = (max(0, int(np.floor(v)) - 2) for v in corners.min(0))
    x1, y1 = min(w, int(np.ceil(corners[:, 0].max())) + 2), min(h, int(np.ceil(corners[:, 1].max())) + 2)
    if x1 - x0 < 2 or y1 - y0 < 2:  # the crop lies outside the photo: nothing to resample
        return image, M
    nw, nh = max(1, round((x1 - x0) * ratio)), max(1, round((y1 - y0) * ratio))
    small = cv2.resize(image[y0:y1, x0:x1], (nw, nh), interpolation=cv2.INTER_AREA)
    Ms = M.astype(np.float64).copy()
    Ms[:, 0], Ms[:, 1] = M[:, 0] * (x1 - x0) / nw, M[:, 1] * (y1 - y0) / nh
    Ms[:, 2] = M[:, 2] + M[:, :2] @ [x0, y0]
    return small, Ms


def align_face(image: np.ndarray, lm5: np.ndarray, cfg: AlignConfig = AlignConfig()) -> Aligned:
    """Crop ``image (H, W, C) uint8`` so that ``lm5 (5, 2)`` px land on :func:`template` (least squares).
    Crops reaching outside the image are padded (``cfg.border``), never refused. With
    ``cfg.source_scale``, a face sharper than the encoder's training faces is resampled to their
    resolution first (:class:`AlignConfig`); ``M`` is the same either way."""
    M = umeyama_similarity(lm5, template(cfg))
    src, Mw, s = image, M, similarity_scale(M)
    if cfg.source_scale and s < cfg.source_scale:
        src, Mw = resample_source(image, M, s / cfg.source_scale, cfg.size)
    return Aligned(crop=warp(src, Mw, cfg.size, cfg.border), M=M, M_inv=invert_affine(M))
