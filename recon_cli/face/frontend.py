"""Image → aligned face crops with landmarks and region masks (detect → 68 points → align → mask).

The one entry point the dataset preparation, the live pipeline and evaluation share. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recon_cli.face.align import AlignConfig, align_face, transform_points
from recon_cli.face.masks import MaskConfig, region_labels
from recon_cli.face.mediapipe_mesh import Face, FaceLandmarker, LandmarkerConfig


@dataclass(frozen=True)
class FrontEndConfig:
    landmarker: LandmarkerConfig = field(default_factory=LandmarkerConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    masks: MaskConfig = field(default_factory=MaskConfig)


@dataclass
class PreparedFace:
    """One face ready for the encoder; crop-space arrays are in crop pixels (camera convention).

    Attributes:
        crop: ``(S, S, 3) uint8`` RGB aligned crop.
        labels: ``(S, S) uint8`` region labels (:mod:`recon_cli.face.masks`).
        lm68: ``(68, 2) float32`` crop px.  mesh: ``(478, 3) float32`` crop px (z scaled likewise).
        M: ``(2, 3) float64`` original → crop.  M_inv: crop → original.
        face: the detection in original-image pixels.
    """

    crop: np.ndarray
    labels: np.ndarray
    lm68: np.ndarray
    mesh: np.ndarray
    M: np.ndarray
    M_inv: np.ndarray
    face: Face


def face_size(face: Face) -> float:
    """Face size in original pixels: the longer side of the 68-point box."""
    span = face.lm68.max(0) - face.lm68.min(0)
    return float(span.max())


class FaceFrontEnd:
    """Holds one :class:`FaceLandmarker` (one MediaPipe graph); use one instance per process."""

    def __init__(self, config: FrontEndConfig = FrontEndConfig()):
        self.config = config
        self.landmarker = FaceLandmarker(config.landmarker)

    def close(self) -> None:
        self.landmarker.close()

    def __enter__(self) -> "FaceFrontEnd":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def detect(self, image_rgb: np.ndarray) -> list[Face]:
        return self.landmarker.detect(image_rgb)

    def prepare(self, image_rgb: np.ndarray, face: Face) -> PreparedFace:
        """Align ``face`` of ``image_rgb`` and build its crop-space landmarks and labels."""
        cfg = self.config
        al = align_face(image_rgb, face.lm5, cfg.align)
        mesh = face.mesh.astype(np.float64).copy()
        mesh[:, :2] = transform_points(mesh[:, :2], al.M)
        mesh[:, 2] *= np.sqrt(abs(np.linalg.det(al.M[:, :2])))
        lm68 = transform_points(face.lm68, al.M).astype(np.float32)
        labels = region_labels(mesh, cfg.align.size, cfg.masks)
        return PreparedFace(crop=al.crop, labels=labels, lm68=lm68, mesh=mesh.astype(np.float32),
                            M=al.M, M_inv=al.M_inv, face=face)

    def process(self, image_rgb: np.ndarray) -> list[PreparedFace]:
        """Every detected face of ``image_rgb``, prepared, highest score first."""
        return [self.prepare(image_rgb, f) for f in self.detect(image_rgb)]
