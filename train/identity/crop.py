"""Where the face-recognition input is cut from the aligned crop.

The encoder's crop (``S × S``, S = 224) is aligned by :mod:`recon_cli.face.align`: a similarity
maps the five detected points (eye centres, nose tip, mouth corners) onto
:data:`recon_cli.face.align.TEMPLATE_5` (the projected mean face of the shipped model; 224 crop,
continuous pixel coordinates). Face-recognition networks expect their own 5-point alignment:
ArcFace's 112 × 112 template (:data:`ARCFACE_5PTS_112`) and the SphereFace/CASIA 112 × 96
template (the ArcFace one shifted 8 px left) used by MobileFaceNet.

Instead of a per-sample similarity warp from detected landmarks (Deep3DFaceRecon's
``estimate_norm``) we use one fixed axis-aligned box: the least-squares scale + translation that
maps the crop's template onto the network's template. Every crop is already aligned to the
template, so the box is the same for all samples (and for the render, which shares the frame).
Crops aligned like Deep3DFaceRecon's (3-D template ``similarity_Lm3D_all.mat`` scaled by 102 px)
have their 5 points at :data:`ALIGN_5PTS_224`; pass ``template=ALIGN_5PTS_224`` for those.

Boxes are ``(x0, y0, x1, y1)`` in *continuous* coordinates as fractions of the crop side
(0 = the left/top edge of the first pixel, 1 = the right/bottom edge of the last), so they do
not depend on the crop size. Config: pass ``box=`` to :class:`train.identity.IdentityNet`.
"""

from __future__ import annotations

import numpy as np

# Deep3DFaceRecon alignment (rescale 102, target 224): 5 template points in the 224 crop.
ALIGN_5PTS_224 = np.array([[80.228, 82.383], [143.599, 82.449], [112.332, 116.710],
                           [86.279, 150.897], [137.344, 150.891]])
# insightface ArcFace template for 112 × 112 crops.
ARCFACE_5PTS_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]])
# SphereFace / CASIA-WebFace template for 112 (H) × 96 (W) crops (MobileFaceNet).
SPHEREFACE_5PTS_112x96 = ARCFACE_5PTS_112 - np.array([8.0, 0.0])


def fit_box(src_pts: np.ndarray, src_size: int, dst_pts: np.ndarray, dst_hw: tuple[int, int]) -> tuple[float, ...]:
    """The box of the source crop that a scale + translation maps onto the destination image.

    Args:
        src_pts: ``(N, 2)`` points in the source crop, pixel-index coordinates.
        src_size: side of the (square) source crop in pixels.
        dst_pts: ``(N, 2)`` the same points in the destination (network input) image.
        dst_hw: ``(H, W)`` of the destination image.

    Returns:
        ``(x0, y0, x1, y1)`` fractions of the source side, continuous coordinates.
    """
    src = np.asarray(src_pts, np.float64) + 0.5  # index → continuous coordinates
    dst = np.asarray(dst_pts, np.float64) + 0.5
    sc, dc = src.mean(0), dst.mean(0)
    s = float(((src - sc) * (dst - dc)).sum() / ((src - sc) ** 2).sum())  # least-squares scale
    t = dc - s * sc
    h, w = dst_hw
    x0, y0 = (0.0 - t) / s
    x1, y1 = (np.array([w, h], np.float64) - t) / s
    return tuple(float(v) / src_size for v in (x0, y0, x1, y1))


def project_template_224() -> np.ndarray:
    """The project's alignment template (:data:`recon_cli.face.align.TEMPLATE_5`) in
    pixel-index coordinates of a 224 crop, ``(5, 2) float64``."""
    from recon_cli.face.align import TEMPLATE_5, TEMPLATE_SIZE

    return np.asarray(TEMPLATE_5, np.float64) * (224.0 / TEMPLATE_SIZE) - 0.5


def default_box(input_hw: tuple[int, int], template: np.ndarray | None = None,
                template_size: int = 224) -> tuple[float, float, float, float]:
    """The box for a network input of ``(112, 96)`` (SphereFace) or ``(112, 112)`` (ArcFace).

    Args:
        template: the crop's 5-point template, pixel-index coordinates of a ``template_size``
            crop; ``None`` = :func:`project_template_224`.
    """
    src = project_template_224() if template is None else np.asarray(template, np.float64)
    dst = {(112, 96): SPHEREFACE_5PTS_112x96, (112, 112): ARCFACE_5PTS_112}.get(tuple(input_hw))
    if dst is None:
        raise ValueError(f"no default crop box for a {input_hw} network input; pass box=(x0, y0, x1, y1)")
    return fit_box(src, template_size, dst, tuple(input_hw))
