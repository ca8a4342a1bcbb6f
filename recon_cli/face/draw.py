"""Drawing for inspection: landmarks and region-label overlays on crops, and image grids (torch-free)."""

from __future__ import annotations

import numpy as np

#: RGB colour per region label (0 out, 1 skin, 2 eyes, 3 nose, 4 mouth).
LABEL_COLOURS = np.array([[0, 0, 0], [80, 200, 80], [60, 120, 255], [255, 200, 40], [255, 60, 60]], np.uint8)


def overlay_labels(img_rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.35) -> np.ndarray:
    """Blend the colour of each label (not 0) over ``img_rgb``; pixels outside are darkened."""
    out = img_rgb.astype(np.float32)
    col = LABEL_COLOURS[np.clip(labels, 0, len(LABEL_COLOURS) - 1)].astype(np.float32)
    inside = labels > 0
    out[inside] = (1 - alpha) * out[inside] + alpha * col[inside]
    out[~inside] *= 0.55
    return out.clip(0, 255).astype(np.uint8)


def draw_points(img_rgb: np.ndarray, pts: np.ndarray, colour=(255, 255, 0), radius: int = 1,
                numbers: bool = False) -> np.ndarray:
    """Draw ``pts (N, 2)`` px (camera convention; NaN skipped) on a copy of ``img_rgb``."""
    import cv2

    out = np.ascontiguousarray(img_rgb.copy())
    for k, (x, y) in enumerate(np.asarray(pts, np.float64)):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        c = (int(round(x - 0.5)), int(round(y - 0.5)))
        cv2.circle(out, c, radius, tuple(int(v) for v in colour), -1, lineType=cv2.LINE_AA)
        if numbers:
            cv2.putText(out, str(k), (c[0] + 2, c[1] - 2), cv2.FONT_HERSHEY_PLAIN, 0.6, tuple(int(v) for v in colour), 1)
    return out


def grid(images: list[np.ndarray], cols: int = 8, pad: int = 2) -> np.ndarray:
    """Tile equally sized ``(H, W, 3)`` images into one picture, row-major."""
    if not images:
        raise ValueError("no images to tile")
    h, w = images[0].shape[:2]
    rows = (len(images) + cols - 1) // cols
    cols = min(cols, len(images))
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = im
    return out
