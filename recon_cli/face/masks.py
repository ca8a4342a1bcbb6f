"""Region masks for the photometric loss, from the MediaPipe mesh (torch-free).

A label map in crop space, ``(S, S) uint8``:

====  ===========================================================================
  0   outside the face, or excluded (occluders when a face-parsing net is used)
  1   skin: inside the face area and not one of the regions below. The face area is the
      union of the mesh's triangles (3-cliques of ``FACEMESH_TESSELATION``, 854 triangles),
      i.e. the projected silhouette of the mesh. The ``FACEMESH_FACE_OVAL`` polygon is the same
      for frontal faces but wrong for profiles: there the far-side oval points lie behind the
      nose and the polygon cuts off nose and lips (seen on AFLW previews), so it is not used.
  2   eyes: the eye openings (``FACEMESH_LEFT_EYE`` / ``FACEMESH_RIGHT_EYE`` loops) *and* the
      brows (convex hull of ``FACEMESH_LEFT_EYEBROW`` / ``…RIGHT_EYEBROW``). Brows are
      included (``MaskConfig.brows_as_eyes``) because the paper weights "eyes" for their
      high-contrast detail, which the brows share; set False to count them as skin.
  3   nose: convex hull of ``FACEMESH_NOSE`` (nasion 168 down the bridge to the alar loop)
  4   mouth: inside the outer lip loop of ``FACEMESH_LIPS`` (lips and the mouth opening)
====  ===========================================================================

Every region is clipped to the face area. Regions are 2-D polygons without occlusion
reasoning: in strong profiles the far eye's polygon may cover a little of the nose bridge. :func:`label_weights` turns labels into per-pixel
photometric weights (paper: skin 1.0, eyes 1.5, nose 1.5, mouth 1.2; :class:`RegionWeights`).

Coordinates follow :mod:`recon_cli.render.camera` (pixel (i, j) centred at (j + 0.5, i + 0.5));
polygons are rasterised by OpenCV with 4 bits of sub-pixel precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

OUT, SKIN, EYES, NOSE, MOUTH = 0, 1, 2, 3, 4
LABEL_NAMES = {OUT: "out", SKIN: "skin", EYES: "eyes", NOSE: "nose", MOUTH: "mouth"}


@dataclass(frozen=True)
class RegionWeights:
    """Photometric weight per label (the paper's values); excluded pixels weigh 0."""

    skin: float = 1.0
    eyes: float = 1.5
    nose: float = 1.5
    mouth: float = 1.2


@dataclass(frozen=True)
class MaskConfig:
    brows_as_eyes: bool = True


def _loops(edges) -> list[list[int]]:
    """Chain an undirected edge set into its connected vertex sequences (loops or paths)."""
    adj: dict[int, list[int]] = {}
    for a, b in edges:
        adj.setdefault(a, []).append(b)
        adj.setdefault(b, []).append(a)
    seen, out = set(), []
    starts = [v for v, n in adj.items() if len(n) == 1] + sorted(adj)
    for s in starts:
        if s in seen:
            continue
        seq, prev, cur = [s], None, s
        seen.add(s)
        while True:
            nxt = [n for n in adj[cur] if n != prev and n not in seen]
            if not nxt:
                break
            prev, cur = cur, nxt[0]
            seen.add(cur)
            seq.append(cur)
        out.append(seq)
    return out


@lru_cache(maxsize=1)
def mesh_triangles() -> np.ndarray:
    """``(854, 3) int64`` triangles of the MediaPipe mesh: the 3-cliques of ``FACEMESH_TESSELATION``."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION as T

    adj: dict[int, set[int]] = {}
    for a, b in T:
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    return np.array(sorted({tuple(sorted((a, b, c))) for a, b in T for c in adj[a] & adj[b]}), np.int64)


def face_area(mesh_xy: np.ndarray, size: int) -> np.ndarray:
    """``(size, size) uint8`` 1 inside the union of the projected mesh triangles and the mesh's
    holes (eye openings, mouth opening: the tessellation has no triangles there), else 0."""
    import cv2

    xy = np.asarray(mesh_xy, np.float64)[:, :2]
    tri = np.round((xy[mesh_triangles()] - 0.5) * 16).astype(np.int32)
    out = np.zeros((size, size), np.uint8)
    for t in tri:  # one by one: fillPoly on all at once would apply the even-odd rule at overlaps
        cv2.fillConvexPoly(out, t, 1, cv2.LINE_8, 4)
    idx = region_indices()
    for loop in (*idx["eye_loops"], *idx["lips_loops"]):
        _fill(out, xy[loop], 1)
    return out


@lru_cache(maxsize=1)
def region_indices() -> dict[str, list[list[int]] | list[int]]:
    """MediaPipe vertex index lists for each region (ordered loops, or point sets for hulls)."""
    from mediapipe.python.solutions import face_mesh_connections as C

    lips = _loops(C.FACEMESH_LIPS)
    oval = _loops(C.FACEMESH_FACE_OVAL)
    return {
        "oval": max(oval, key=len),
        "eye_loops": [max(_loops(C.FACEMESH_LEFT_EYE), key=len), max(_loops(C.FACEMESH_RIGHT_EYE), key=len)],
        "brows": [sorted({v for e in C.FACEMESH_LEFT_EYEBROW for v in e}),
                  sorted({v for e in C.FACEMESH_RIGHT_EYEBROW for v in e})],
        "nose": sorted({v for e in C.FACEMESH_NOSE for v in e}),
        "lips_loops": lips,
    }


def _fill(canvas: np.ndarray, pts: np.ndarray, value: int) -> None:
    import cv2

    shift = 4
    p = np.round((np.asarray(pts, np.float64) - 0.5) * (1 << shift)).astype(np.int32)
    cv2.fillPoly(canvas, [p.reshape(-1, 1, 2)], int(value), lineType=cv2.LINE_8, shift=shift)


def _hull(pts: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.convexHull(np.asarray(pts, np.float32)).reshape(-1, 2)


def _polygon_area(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def region_labels(mesh_xy: np.ndarray, size: int, cfg: MaskConfig = MaskConfig()) -> np.ndarray:
    """``mesh_xy: (468|478, 2+)`` MediaPipe points in crop px → ``(size, size) uint8`` labels."""
    idx = region_indices()
    xy = np.asarray(mesh_xy, np.float64)[:, :2]
    oval = face_area(xy, size)
    lab = oval.copy()
    if cfg.brows_as_eyes:
        for b in idx["brows"]:
            _fill(lab, _hull(xy[b]), EYES)
    for loop in idx["eye_loops"]:
        _fill(lab, xy[loop], EYES)
    _fill(lab, _hull(xy[idx["nose"]]), NOSE)
    outer = max((xy[loop] for loop in idx["lips_loops"]), key=_polygon_area)
    _fill(lab, outer, MOUTH)
    lab[oval == 0] = OUT
    return lab


def label_weights(labels: np.ndarray, weights: RegionWeights = RegionWeights()) -> np.ndarray:
    """``labels (..., H, W) uint8`` → ``(..., H, W) float32`` photometric weights (0 outside)."""
    lut = np.zeros(256, np.float32)
    lut[SKIN], lut[EYES], lut[NOSE], lut[MOUTH] = weights.skin, weights.eyes, weights.nose, weights.mouth
    return lut[np.asarray(labels, np.uint8)]


def exclude(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Set labels to 0 where ``keep (H, W) bool`` is False (e.g. hair/glasses from face parsing)."""
    out = labels.copy()
    out[~keep] = OUT
    return out
