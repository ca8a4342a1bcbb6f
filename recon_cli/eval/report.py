"""``--report DIR``: a PNG grid of the worst images, predicted landmarks red, ground truth green.

Each tile is the ground-truth ROI box (3DDFA's square box, :func:`recon_cli.eval.crops.roi_box_from_landmarks`)
resized to ``tile`` px, with the name, |yaw| and NME printed on it. Written atomically.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from recon_cli.atomic import atomic_path
from recon_cli.eval.aflw2000 import EvalResult, read_image
from recon_cli.eval.crops import roi_box_from_landmarks

RED, GREEN = (0, 0, 255), (0, 200, 0)  # BGR


def tile_image(image_bgr: np.ndarray, pred68: np.ndarray, gt68: np.ndarray, caption: str, tile: int = 256) -> np.ndarray:
    """(tile, tile, 3) uint8 BGR: the GT box crop with both landmark sets drawn."""
    import cv2

    x0, y0, x1, y1 = roi_box_from_landmarks(gt68)
    s = tile / (x1 - x0)
    m = np.array([[s, 0, -s * x0], [0, s, -s * y0]], dtype=np.float64)
    out = cv2.warpAffine(image_bgr, m, (tile, tile), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT)
    for pts, colour in ((gt68, GREEN), (pred68, RED)):
        p = (np.asarray(pts)[:2].T * s + m[:, 2]).round().astype(int)
        for x, y in p:
            cv2.circle(out, (int(x), int(y)), 2, colour, -1, cv2.LINE_AA)
    cv2.rectangle(out, (0, 0), (tile, 18), (0, 0, 0), -1)
    cv2.putText(out, caption, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def write_worst_grid(result: EvalResult, out_dir: str | Path, n: int = 24, cols: int = 6, tile: int = 256) -> Path:
    """Write ``worst_<crop>.png`` (the ``n`` highest-NME images) into ``out_dir``; returns its path."""
    import cv2

    worst = sorted(result.images, key=lambda r: -r.nme)[:n]
    root = Path(result.settings["data"])
    tiles = [tile_image(read_image(root / r.name), r.pred68, r.gt68,
                        f"{r.name[:-4]} yaw {abs(r.yaw_deg):.0f} NME {100 * r.nme:.1f}%"
                        + (" MISS" if r.detector_hit is False else ""), tile) for r in worst]
    rows = max(1, math.ceil(len(tiles) / cols))
    grid = np.zeros((rows * tile, cols * tile, 3), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        grid[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = t
    path = Path(out_dir) / f"worst_{result.settings['crop']}.png"
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), grid):
            raise OSError(f"could not write {path}")
    return path
