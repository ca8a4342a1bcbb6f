"""The methods ``recon eval aflw2000`` scores: the trained encoder (``recon``) and the
landmarks-only baseline (``mediapipe``: MediaPipe FaceMesh's 68 mapped points, no encoder, the
teacher the encoder's landmark loss learns from).

Both return (2, 68) float64 landmarks in original-image pixels, iBUG order (see
:class:`recon_cli.eval.aflw2000.LandmarkPredictor`). Images arrive BGR uint8 (OpenCV).
Torch-free: the ``recon`` method runs whatever :func:`recon_cli.backends.load_backend` opens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from recon_cli.errors import InputError
from recon_cli.eval.contour import inner_settings
from recon_cli.eval.crops import roi_box_from_landmarks
from recon_cli.face.roi_mesh import RoiFaceMesh

#: ``ReconPredictor(tta=...)`` / ``recon eval --tta``.
TTA_MODES = ("none", "flip")


class MediaPipePredictor:
    """MediaPipe FaceMesh → 68 points (:mod:`recon_cli.face.landmarks68`), no encoder.

    ``detect``: FaceMesh with its own BlazeFace detector on the whole photo (up to ``max_faces``),
    through :class:`recon_cli.face.mediapipe_mesh.FaceLandmarker`.
    ``predict_gt_box``: the FaceMesh landmark model on the 3DDFA ROI box
    (:func:`recon_cli.eval.crops.roi_box_from_landmarks`), no detector (:class:`RoiFaceMesh`).
    """

    name = "mediapipe"

    def __init__(self, max_faces: int = 4, min_detection_confidence: float | None = None,
                 bfm_template: str | Path | None = None, teacher_mesh: str | Path | None = None,
                 calib: str | Path | None = None, calib_auto: bool = False, jaw: str = "model",
                 inner_bfm: bool = True):
        """``bfm_template`` + ``teacher_mesh``: score the inner points in the BFM convention
        (``inner_bfm``), as ``recon eval --inner bfm`` does for the encoder, and with ``jaw="bfm-spacing"``
        the jaw points at the BFM's spacing along the jaw (:class:`recon_cli.eval.contour.TeacherInner`;
        MediaPipe's jaw has no hidden-contour rule); ``calib``: a ``.aflw21.json`` fitted for
        MediaPipe's points (``recon eval calibrate --method mediapipe``), added to that convention's
        offsets (so it needs both files); ``calib_auto``: the file was found, not asked for: left out
        (not an error) when fitted on top of other rules."""
        from recon_cli.face.mediapipe_mesh import FaceLandmarker, LandmarkerConfig

        if jaw not in ("model", "bfm-spacing"):
            raise InputError(f"MediaPipe's jaw rule must be model or bfm-spacing, got {jaw!r}", hint="--contour bfm|model")
        spacing = jaw == "bfm-spacing" and bfm_template is not None and teacher_mesh is not None
        use_inner = inner_bfm and bfm_template is not None and teacher_mesh is not None
        self._inner = None
        if spacing or use_inner:
            from recon_cli.eval.contour import TeacherInner, load_bfm_template, load_teacher_canonical

            self._inner = TeacherInner.from_template(load_bfm_template(bfm_template), load_teacher_canonical(teacher_mesh),
                                                     inner=use_inner, spacing=spacing)
        self.inner = inner_settings(bfm_template, teacher_mesh if use_inner else None)
        self.jaw = {"rule": "bfm-spacing" if spacing else "model", "template": str(bfm_template) if spacing else None}
        from recon_cli.eval.aflw21_calib import CANONICAL_M, resolve

        cal = resolve(calib, None, {"contour": self.jaw["rule"], "inner": self.inner["rule"]}, auto=calib_auto)
        self.calib = None if cal is None else cal.settings()
        if cal is not None:
            if self._inner is None:
                raise InputError("a MediaPipe calibration is added to the BFM inner-point convention",
                                 hint="use --inner bfm (the default) with --calib, or pass --calib none")
            self._inner.gap = self._inner.gap + cal.offsets * CANONICAL_M
        kw = {} if min_detection_confidence is None else {"min_detection_confidence": min_detection_confidence}
        self._cfg = LandmarkerConfig(static=True, max_faces=max_faces, **kw)
        self._lm = FaceLandmarker(self._cfg)
        self._roi = RoiFaceMesh(refine=self._cfg.refine)

    def close(self) -> None:
        self._lm.close()
        self._roi.close()

    def settings(self) -> dict[str, Any]:
        return {"landmarker": dict(self._cfg.__dict__), "contour": self.jaw, "inner": self.inner, "aflw21_calib": self.calib,
                "gt_crop": "FaceMesh landmark model on the 3DDFA ROI box (sqrt(2)*max(w,h) square), no detector"}

    def _points(self, mesh: np.ndarray, lm68: np.ndarray | None = None) -> np.ndarray:
        """A mesh (image px) → ``(2, 68)`` scored points."""
        from recon_cli.face.landmarks68 import mesh_to_68

        if self._inner is not None:
            return self._inner.points68(mesh).T
        return np.asarray(mesh_to_68(mesh) if lm68 is None else lm68, dtype=np.float64).T

    @staticmethod
    def _rgb(image_bgr: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(image_bgr[..., ::-1])

    def detect(self, image_bgr: np.ndarray) -> list[np.ndarray]:
        return [self._points(f.mesh, f.lm68) for f in self._lm.detect(self._rgb(image_bgr))]

    def predict(self, image_bgr: np.ndarray, face: np.ndarray) -> np.ndarray:
        return np.asarray(face, dtype=np.float64)

    def predict_gt_box(self, image_bgr: np.ndarray, gt68: np.ndarray) -> np.ndarray:
        return self._points(self._roi.mesh(self._rgb(image_bgr), roi_box_from_landmarks(gt68)))


def no_weights_error() -> InputError:
    from recon_cli.paths import WEIGHTS_DIR

    return InputError(f"--method recon needs trained encoder weights, and none are shipped yet (nothing in {WEIGHTS_DIR})",
                      hint="pass --weights FILE: a .pt checkpoint from `recon train` or an .onnx/.engine from "
                           "`recon export`; or use --method mediapipe for the landmarks-only baseline")


def default_weights() -> Path | None:
    """The shipped default encoder: ``recon_cli/weights/default.onnx`` (torch-free) or ``default.pt``
    (the name ``recon export`` uses), or None while none is shipped."""
    from recon_cli.paths import WEIGHTS_DIR

    for name in ("default.onnx", "default.pt"):
        if (WEIGHTS_DIR / name).is_file():
            return WEIGHTS_DIR / name
    return None


class ReconPredictor:
    """The trained encoder through the real pipeline (:class:`recon_cli.pipeline.reconstruct.Reconstructor`):
    MediaPipe detection → 5 points → similarity alignment → encoder → coefficients → the model's
    68 landmark vertices projected and mapped back to original px (``dense=False``).

    ``predict_gt_box`` (the 3DDFA protocol and detector misses) sees only the ground-truth ROI box
    and aligns by ``gt_align``:

    * ``"mesh"`` (default): MediaPipe's FaceMesh landmark model on the ROI box (no detector, as the
      ``mediapipe`` baseline does) gives the 5 points, then the usual similarity alignment. The crop
      is made the way ``recon prep`` made every training crop, profiles included.
    * ``"box"``: no landmarks at all; the virtual 5 points of
      :func:`recon_cli.eval.crops.virtual_five_points` place the box where a frontal mean face's box
      would be. On profiles this crop differs from the training crops (measured in the README).

    Args:
        weights: ``.pt`` / ``.onnx`` / ``.engine`` (:func:`recon_cli.backends.load_backend`).
        model: the morphable model the encoder was trained for (default: the shipped one).
        gt_align: ``"mesh"`` or ``"box"`` (above).
        bfm_template: the convention of the scored 68 points: None = the model's landmark
            vertices; the BFM 68-point template file = AFLW2000-3D's (BFM) convention
            (:class:`recon_cli.eval.contour.HiddenContour` built for ``model``), for the jaw by ``jaw``
            and, with ``teacher_mesh`` (MediaPipe's ``face_landmarker.task``) and ``inner_bfm``, the
            BFM's inner points (:func:`recon_cli.eval.contour.teacher_offsets`).
        jaw: ``"bfm"``: hidden jaw points at the BFM contour's depth, visible ones slid to the BFM's
            spacing along the jaw (:func:`recon_cli.eval.contour.model_jaw_spacing`; needs
            ``teacher_mesh``); ``"bfm-hidden"``: the hidden ones only; ``"model"``: the model's jaw.
        calib: a ``.aflw21.json`` of ``recon eval calibrate`` (:mod:`recon_cli.eval.aflw21_calib`):
            AFLW's annotation convention for the brows, eyes, mouth and chin, added on top of the
            two rules above; it must have been fitted for this encoder file and these rules
            (``calib_auto``: found beside the weights, not asked for: left out when fitted on top of
            other rules, as ``--inner model`` asks for the encoder's own points).
        tta: test-time augmentation. ``"none"``: one crop. ``"flip"``: the crop and its mirror
            image (the 5 alignment points mirrored, so the mirrored crop is the mirror of the crop)
            in one encoder batch; the mirror's 68 points are mirrored back (x → W − x, iBUG mirror
            order :data:`~recon_cli.face.landmarks68.MIRROR68`) and the two sets averaged, as is
            the head yaw (negated for the mirror). Twice the encoder work; not the paper's protocol.
        source_res: ``"train"`` (default) or ``"native"``: whether a photo sharper than the
            encoder's training faces is resampled to their resolution before the crop
            (:class:`recon_cli.pipeline.reconstruct.Reconstructor`).
        yaw_symmetry: ``"on"`` (default) or ``"off"``: whether the yaw-dependent mean asymmetry the
            weights record is removed (:mod:`recon_cli.pipeline.symmetry`); a calibration must have
            been fitted the same way (its rule ``symmetry``).
    """

    name = "recon"

    def __init__(self, weights: str | Path, backend: str = "auto", threads: int | None = None, max_faces: int = 4,
                 model=None, gt_align: str = "mesh", bfm_template: str | Path | None = None, tta: str = "none",
                 teacher_mesh: str | Path | None = None, jaw: str = "bfm", calib: str | Path | None = None,
                 calib_auto: bool = False, source_res: str = "train", inner_bfm: bool = True,
                 yaw_symmetry: str = "on"):
        from recon_cli.backends import load_backend
        from recon_cli.eval.crops import canonical_box_in_crop
        from recon_cli.face.align import template
        from recon_cli.face.mediapipe_mesh import FaceLandmarker, LandmarkerConfig
        from recon_cli.pipeline.reconstruct import Reconstructor

        if tta not in TTA_MODES:
            raise InputError(f"tta must be one of {', '.join(TTA_MODES)}, got {tta!r}", hint="--tta none|flip")
        self.tta = tta
        if model is None:
            from recon_cli.morphable import load_default_model

            model = load_default_model()
        from recon_cli.eval.contour import JAW_RULES

        if jaw not in JAW_RULES:
            raise InputError(f"jaw rule must be one of {', '.join(JAW_RULES)}, got {jaw!r}", hint="--contour bfm|bfm-hidden|model")
        if jaw == "bfm" and bfm_template is not None and teacher_mesh is None:
            raise InputError("the BFM jaw rule needs MediaPipe's canonical face for the teacher's jaw spacing",
                             hint="pass --teacher-mesh face_landmarker.task, or --contour bfm-hidden")
        contour = None
        if bfm_template is not None:  # read first: a bad template fails before the encoder loads
            from recon_cli.eval.contour import HiddenContour, load_bfm_template, load_teacher_canonical

            teacher = None if teacher_mesh is None else load_teacher_canonical(teacher_mesh)
            contour = HiddenContour.from_template(model, load_bfm_template(bfm_template), teacher,
                                                  jaw=jaw != "model", spacing=jaw == "bfm", inner=inner_bfm)
        elif teacher_mesh is not None:
            raise InputError("the inner-point convention needs the BFM template", hint="pass bfm_template")
        jaw_rule = jaw if contour is not None else "model"
        self.inner = inner_settings(bfm_template, teacher_mesh if inner_bfm else None)
        from recon_cli.eval.aflw21_calib import resolve

        enc = load_backend(weights, backend=backend, threads=threads)
        self._rec = Reconstructor(enc, model, contour=contour, source_res=source_res, yaw_symmetry=yaw_symmetry)
        # the calibration is checked right after the encoder loads (its rules depend on the weights' metadata)
        cal = resolve(calib, weights, {"contour": jaw_rule, "inner": self.inner["rule"],
                                       "symmetry": self._rec.symmetry_rule}, auto=calib_auto)
        self.calib = None if cal is None else cal.settings()
        if cal is not None:
            from recon_cli.eval.contour import HiddenContour

            if self._rec.contour is None:
                self._rec.contour = HiddenContour(offsets=np.zeros((68, 3)), normals=np.zeros((68, 3)))
            c = self._rec.contour
            c.inner = cal.offsets if c.inner is None else c.inner + cal.offsets
        self.weights, self.backend_name = Path(weights), backend
        self.source_res = source_res
        self.contour = {"rule": jaw_rule, "template": None if jaw_rule == "model" else str(bfm_template)}
        self._target5 = template(self._rec.align_cfg)
        self._box = canonical_box_in_crop(model, self._rec.cam)
        self._lm = FaceLandmarker(LandmarkerConfig(static=True, max_faces=max_faces))
        if gt_align not in ("mesh", "box"):
            raise InputError(f"gt_align must be mesh or box, got {gt_align!r}", hint="--gt-align mesh|box")
        self.gt_align = gt_align
        self._roi = RoiFaceMesh() if gt_align == "mesh" else None
        self._faces: dict[int, Any] = {}
        self.last_yaw_deg: float | None = None  # head yaw (deg, image camera) of the last prediction
        self._meta = {k: enc.meta.get(k) for k in ("arch", "size", "model_name", "precision")}
        self._backend_kind = getattr(enc, "name", backend)

    def close(self) -> None:
        self._lm.close()
        if self._roi is not None:
            self._roi.close()

    def settings(self) -> dict[str, Any]:
        return {"weights": str(self.weights), "backend": self._backend_kind, "encoder": self._meta,
                "align": dict(self._rec.align_cfg.__dict__),
                "gt_align": self.gt_align,
                "tta": self.tta,
                "source_res": self.source_res,
                "yaw_symmetry": {"rule": self._rec.symmetry_rule, "faces": None if self._rec.symmetry is None else self._rec.symmetry.faces},
                "contour": self.contour,
                "inner": self.inner,
                "aflw21_calib": self.calib,
                "gt_align_detail": ("FaceMesh landmark model on the 3DDFA ROI box -> 5 points -> alignment"
                                    if self.gt_align == "mesh" else "box only: virtual 5 points (no landmarks)"),
                "box_in_crop": [round(float(v), 4) for v in self._box],
                "box_in_crop_source": "model mean landmarks projected at zero pose by the crop camera"}

    def _run(self, image_bgr: np.ndarray, lm5: np.ndarray) -> np.ndarray:
        """Image (H, W, 3) BGR + 5 alignment points (5, 2) px → (2, 68) px; sets ``last_yaw_deg``."""
        from recon_cli.face.landmarks68 import MIRROR5, MIRROR68

        rgb = np.ascontiguousarray(image_bgr[..., ::-1])
        lm5 = np.asarray(lm5, dtype=np.float64)
        views = [(rgb, lm5)]
        if self.tta == "flip":
            w = rgb.shape[1]
            lm5m = lm5[MIRROR5].copy()
            lm5m[:, 0] = w - lm5m[:, 0]  # pixel centres j + 0.5 ↔ (W − 1 − j) + 0.5
            views.append((np.ascontiguousarray(rgb[:, ::-1]), lm5m))
        aligned = [self._rec.align(img, [p])[0] for img, p in views]
        recs = self._rec.build(self._rec.encode(np.stack([a.crop for a in aligned])),
                               np.stack([a.M for a in aligned]), dense=False)
        lm = np.asarray(recs[0].lm68, dtype=np.float64).T
        yaw = float(np.degrees(recs[0].angles_img[1]))
        if self.tta == "flip":
            back = np.asarray(recs[1].lm68, dtype=np.float64)[MIRROR68].T.copy()
            back[0] = rgb.shape[1] - back[0]
            lm = (lm + back) / 2
            yaw = (yaw - float(np.degrees(recs[1].angles_img[1]))) / 2
        self.last_yaw_deg = yaw
        return lm

    def detect(self, image_bgr: np.ndarray) -> list[np.ndarray]:
        faces = self._lm.detect(np.ascontiguousarray(image_bgr[..., ::-1]))
        self._faces = {}
        out = []
        for f in faces:
            arr = np.asarray(f.lm68, dtype=np.float64).T
            self._faces[id(arr)] = f
            out.append(arr)
        return out

    def predict(self, image_bgr: np.ndarray, face: np.ndarray) -> np.ndarray:
        return self._run(image_bgr, self._faces[id(face)].lm5)

    def predict_gt_box(self, image_bgr: np.ndarray, gt68: np.ndarray) -> np.ndarray:
        from recon_cli.eval.crops import virtual_five_points

        if self._roi is not None:
            face = self._roi.face(np.ascontiguousarray(image_bgr[..., ::-1]), roi_box_from_landmarks(gt68))
            return self._run(image_bgr, face.lm5)
        return self._run(image_bgr, virtual_five_points(gt68, self._target5, self._box))
