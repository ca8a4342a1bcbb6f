"""The training preview grid: one row per sample, three columns —
input crop | render composited over the input | input with landmarks
(detected = green, projected model landmarks = red).

Written atomically as PNG (``<run>/grids/step_XXXXXXX.png`` and ``<run>/grid_last.png``).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from recon_cli.atomic import atomic_path

GREEN, RED = (0, 200, 0), (0, 0, 255)  # BGR


def _to_bgr_u8(img) -> np.ndarray:
    """``(3, S, S)`` float RGB in [0, 1] (tensor or array) → ``(S, S, 3) uint8`` BGR."""
    a = img.detach().float().cpu().numpy() if hasattr(img, "detach") else np.asarray(img, dtype=np.float32)
    return np.ascontiguousarray((np.clip(a, 0, 1).transpose(1, 2, 0)[..., ::-1] * 255.0 + 0.5).astype(np.uint8))


def make_grid(images, composites, lm_detected, lm_projected, max_rows: int = 8, scale: int = 0) -> np.ndarray:
    """Build the grid image.

    Args:
        images, composites: ``(B, 3, S, S)`` float RGB in [0, 1].
        lm_detected, lm_projected: ``(B, 68, 2)`` crop px at size S.
        max_rows: at most this many samples.
        scale: upscale factor for small crops (0 = auto: make each tile at least 160 px).
    Returns:
        ``(rows·S', 3·S', 3) uint8`` BGR.
    """
    n = min(int(images.shape[0]), max_rows)
    S = int(images.shape[-1])
    k = scale or max(1, int(np.ceil(160 / S)))
    det = lm_detected.detach().float().cpu().numpy() if hasattr(lm_detected, "detach") else np.asarray(lm_detected)
    prj = lm_projected.detach().float().cpu().numpy() if hasattr(lm_projected, "detach") else np.asarray(lm_projected)
    rows = []
    for i in range(n):
        a = _to_bgr_u8(images[i])
        b = _to_bgr_u8(composites[i])
        tiles = [cv2.resize(t, (S * k, S * k), interpolation=cv2.INTER_NEAREST) for t in (a, b, a.copy())]
        r = max(1, k)
        for pts, colour in ((det[i], GREEN), (prj[i], RED)):
            for x, y in pts:
                if np.isfinite(x) and np.isfinite(y):
                    cv2.circle(tiles[2], (int(round(x * k)), int(round(y * k))), r, colour, -1, cv2.LINE_AA)
        rows.append(np.concatenate(tiles, axis=1))
    grid = np.concatenate(rows, axis=0)
    for c in range(1, 3):  # thin separators
        grid[:, c * S * k - 1] = 255
    return grid


def write_grid(path: str | Path, grid: np.ndarray) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), grid):
            raise OSError(f"could not write {path}")
    return path
