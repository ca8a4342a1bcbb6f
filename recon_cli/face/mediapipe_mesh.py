"""Face detection + dense landmarks with MediaPipe FaceMesh (``mediapipe==0.10.21``, torch-free).

:class:`FaceLandmarker` wraps MediaPipe's ``face_landmark_front_cpu`` graph (the graph behind
``mediapipe.solutions.face_mesh.FaceMesh``: BlazeFace short-range detection, then the 468-point
mesh model, plus the attention model's 10 iris points with ``refine=True`` → 478 points). It is
built once through ``SolutionBase`` so that, besides the landmarks, it also returns the graph's
``face_detections`` stream: the BlazeFace score of every face (the solutions API drops it).

Modes
-----
* ``static=True`` (images): detection runs on every image; every face gets its detection score.
* ``static=False`` (video): MediaPipe tracks faces from the previous frame's landmarks and only
  re-runs detection when fewer than ``max_faces`` faces are tracked. A tracked face keeps the
  score of the detection it was last matched to (nearest box centre).

Coordinates
-----------
Every output is in the pixels of the image passed to :meth:`FaceLandmarker.detect`: x right,
y down, origin at the top-left corner of the top-left pixel (pixel (i, j) has its centre at
(j + 0.5, i + 0.5), as in :mod:`recon_cli.render.camera`). ``mesh[:, 2]`` is MediaPipe's
relative depth scaled to pixels like x (smaller = closer to the camera, roughly zero at the face
centre).

Small images (the 120×120 AFLW crops)
-------------------------------------
``upscale_to`` / ``pad`` preprocess before detection (coordinates are mapped back). Measured on
300 random AFLW training crops (120×120, face filling the crop): detection rate 0.917 raw,
0.917 upscaled ×2, 0.910 padded 25 % black, 0.900 padded 25 % replicate: BlazeFace resizes its
input to 128×128 anyway, so neither helps and both default off. The misses are profile faces
(mean |yaw| 71° vs 34° for hits); lowering ``min_detection_confidence`` to 0.3 lifts the rate
to 0.923 (|yaw| < 30°: 0.993), hence the default 0.3. Over all 16,000 AFLW crops (``recon
prep``): 1,421 without a detection (detection rate 0.911), 259 more below ``--min-size`` 32 px.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from recon_cli.errors import InputError
from recon_cli.face.landmarks68 import five_from_68, mesh_to_68

_GRAPH = "mediapipe/modules/face_landmark/face_landmark_front_cpu.binarypb"
_DET_THRESH = ("facedetectionshortrangecpu__facedetectionshortrange__facedetection__"
               "TensorsToDetectionsCalculator.min_score_thresh")
_TRACK_THRESH = "facelandmarkcpu__ThresholdingCalculator.threshold"


@dataclass(frozen=True)
class LandmarkerConfig:
    """Settings of :class:`FaceLandmarker` (all defaults in one place).

    Attributes:
        static: True for unrelated images (detect every time), False for video (track).
        max_faces: most faces returned per image.
        refine: MediaPipe's attention model: 478 points (with irises) and sharper eyes/lips.
        min_detection_confidence: BlazeFace score threshold (0.3: see the module docstring).
        min_tracking_confidence: landmark presence threshold below which a track is dropped.
        upscale_to: upscale images whose shorter side is below this many pixels (0 = off).
        pad: pad each side by this fraction of the longer side before detection (0 = off).
        quiet: hide MediaPipe's native log lines (stderr fd 2) during graph creation and calls.
    """

    static: bool = True
    max_faces: int = 1
    refine: bool = True
    min_detection_confidence: float = 0.3
    min_tracking_confidence: float = 0.5
    upscale_to: int = 0
    pad: float = 0.0
    quiet: bool = True


@dataclass
class Face:
    """One detected face; every coordinate in input-image pixels (see the module docstring).

    Attributes:
        mesh: ``(478, 3) float32`` (468 without refine) MediaPipe mesh points, x/y px, z relative px.
        lm68: ``(68, 2) float32`` iBUG/300W points (:mod:`recon_cli.face.landmarks68`).
        lm5: ``(5, 2) float32`` image-left eye centre, image-right eye centre, nose tip,
            image-left mouth corner, image-right mouth corner.
        bbox: ``(4,) float32`` x0, y0, x1, y1 px: the detection box, or the mesh's extent when
            no detection was matched (tracking).
        score: BlazeFace detection score in [0, 1] (the last matched one while tracking).
    """

    mesh: np.ndarray
    lm68: np.ndarray
    lm5: np.ndarray
    bbox: np.ndarray
    score: float
    extra: dict = field(default_factory=dict)


@contextlib.contextmanager
def _quiet_native_stderr(enabled: bool = True):
    """Silence MediaPipe's native warnings (written straight to fd 2, e.g. "Feedback manager
    requires a model with a single signature"); graph errors still raise in Python. ~10 µs."""
    if not enabled:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class FaceLandmarker:
    """Detect faces and their landmarks in RGB images; reuse one instance (the graph is built once).

    Use as a context manager or call :meth:`close`. Not thread-safe: one instance per
    thread/process.
    """

    def __init__(self, config: LandmarkerConfig | None = None, **overrides):
        from mediapipe.python.solution_base import SolutionBase

        cfg = config or LandmarkerConfig()
        if overrides:
            cfg = LandmarkerConfig(**{**cfg.__dict__, **overrides})
        self.config = cfg
        with _quiet_native_stderr(cfg.quiet):
            self._graph = SolutionBase(
                binary_graph_path=_GRAPH,
                side_inputs={"num_faces": cfg.max_faces, "with_attention": cfg.refine,
                             "use_prev_landmarks": not cfg.static},
                calculator_params={_DET_THRESH: cfg.min_detection_confidence,
                                   _TRACK_THRESH: cfg.min_tracking_confidence},
                outputs=["multi_face_landmarks", "face_detections"],
            )
        self._track_scores: list[tuple[np.ndarray, float]] = []

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None

    def __enter__(self) -> "FaceLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def reset(self) -> None:
        """Forget tracking state (video mode): the next frame runs detection again."""
        self._graph.reset()
        self._track_scores = []

    # ------------------------------------------------------------------ detection
    def detect(self, image_rgb: np.ndarray) -> list[Face]:
        """``image_rgb: (H, W, 3) uint8`` RGB → faces, highest score first (static mode)."""
        if self._graph is None:
            raise RuntimeError("FaceLandmarker is closed")
        img = np.asarray(image_rgb)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise InputError(f"expected an RGB uint8 image of shape (H, W, 3), got {img.dtype} {img.shape}",
                             hint="load images with recon_cli.face.io.read_rgb (or cv2.imread + cvtColor BGR2RGB)")
        work, scale, offset = self._preprocess(img)
        h, w = work.shape[:2]
        with _quiet_native_stderr(self.config.quiet):  # models start lazily: any call may log
            res = self._graph.process({"image": np.ascontiguousarray(work)})
        dets = _detections(res.face_detections, w, h)
        faces = []
        for lms in res.multi_face_landmarks or []:
            mesh = np.array([(p.x * w, p.y * h, p.z * w) for p in lms.landmark], dtype=np.float32)
            mesh[:, :2] = (mesh[:, :2] - offset) / scale
            mesh[:, 2] /= scale[0]
            lo, hi = mesh[:, :2].min(0), mesh[:, :2].max(0)
            box, score = self._match(dets, (lo + hi) / 2, scale, offset)
            if box is None:
                box = np.concatenate([lo, hi])
            lm68 = mesh_to_68(mesh)
            faces.append(Face(mesh=mesh, lm68=lm68, lm5=five_from_68(lm68),
                              bbox=np.asarray(box, dtype=np.float32), score=float(score)))
        if not self.config.static:
            self._track_scores = [((f.bbox[:2] + f.bbox[2:]) / 2, f.score) for f in faces]
        faces.sort(key=lambda f: -f.score)
        return faces

    def _preprocess(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Upscale / pad; returns the work image, its scale and offset (work = img·scale + offset)."""
        import cv2

        cfg, scale, offset = self.config, np.ones(2, np.float32), np.zeros(2, np.float32)
        h, w = img.shape[:2]
        if cfg.upscale_to and min(h, w) < cfg.upscale_to:
            s = cfg.upscale_to / min(h, w)
            size = (int(round(w * s)), int(round(h * s)))
            img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
            scale = np.array([size[0] / w, size[1] / h], np.float32)  # exact per-axis ratios
        if cfg.pad > 0:
            p = int(round(cfg.pad * max(img.shape[:2])))
            img = cv2.copyMakeBorder(img, p, p, p, p, cv2.BORDER_CONSTANT, value=0)
            offset += p
        return img, scale, offset

    def _match(self, dets, centre, scale, offset):
        """Detection whose box holds the mesh centre (image px) → (box in image px, score)."""
        best, best_d = None, np.inf
        for box, score in dets:
            box = (box.reshape(2, 2) - offset) / scale
            if np.all(centre >= box[0]) and np.all(centre <= box[1]):
                d = float(np.linalg.norm(box.mean(0) - centre))
                if d < best_d:
                    best, best_d = (box.reshape(4), score), d
        if best is not None:
            return best
        if self._track_scores:  # tracking: keep the score of the nearest previous face
            d = [np.linalg.norm(c - centre) for c, _ in self._track_scores]
            return None, self._track_scores[int(np.argmin(d))][1]
        return None, float("nan")


def _detections(dets, w: int, h: int) -> list[tuple[np.ndarray, float]]:
    """MediaPipe Detection protos → [(box x0, y0, x1, y1 in work px, score)]."""
    out = []
    for d in dets or []:
        bb = d.location_data.relative_bounding_box
        box = np.array([bb.xmin * w, bb.ymin * h, (bb.xmin + bb.width) * w, (bb.ymin + bb.height) * h], np.float32)
        out.append((box, float(d.score[0]) if d.score else float("nan")))
    return out
