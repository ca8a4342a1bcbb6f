"""The jaw-contour convention of AFLW2000-3D's ground truth, for a morphable model other than the BFM.

AFLW2000-3D's 68 points come from 3DDFA's fits of the Basel Face Model: on a turned face the jaw
points on the far (hidden) side are the BFM's own 3-D contour vertices, seen through the head,
while the near side stays on the visible outline. ICT-FaceKit's 68 landmark vertices
(``idx_to_landmark_verts``) are a fitting convention whose jaw points lie 2.4–3.0 cm further
forward than the BFM's (measured with :func:`template_in_model_frame`: the BFM 68-point
template, aligned by a similarity on the 51 inner points 17–67 (0.34 cm rms), against the ICT mean
shape). On a profile that depth difference projects to ~17 % of the face box on the hidden side
only, which is what the shipped encoder's AFLW2000-3D residuals showed (README, model card).

:class:`HiddenContour` applies the BFM convention where it differs: a jaw landmark (0–16) whose
mean-shape vertex normal, turned by the predicted head pose, faces away from the camera centre
moves by the fixed model-space offset (BFM template point − ICT landmark), so it is scored at the
BFM contour's depth; visible jaw points and the 51 inner points are unchanged. The rule has no
free parameter and uses no benchmark data: only the BFM's mean 68-point template
(Deep3DFaceRecon's ``BFM/similarity_Lm3D_all.mat``, key ``lm``, ``(68, 3)``, iBUG order), which is
read at run time and never shipped.

The visible jaw points keep the model's outline but not its spacing (``visible`` of
:class:`HiddenContour`, ``--contour bfm``; ``--contour bfm-hidden`` leaves them): the teacher spaces
its 17 jaw points evenly along MediaPipe's face oval, the BFM's landmark vertices sit at other
fractions of the jaw's length. :func:`jaw_spacing` slides each point along the mean jaw by the
difference of the two fractions (frontal x, y arc lengths of the BFM template and of the teacher's
68 on MediaPipe's canonical face): no free parameter, no benchmark data. The whole template-minus-
teacher jaw gap, which also narrows the jaw, is not used: it made the frontal bin worse.

The inner points (17–67) have a convention gap of their own, but not against the ICT mesh: the
encoder's landmark vertices were trained onto its teacher's points (MediaPipe's mesh mapped to the
68 by :mod:`recon_cli.face.landmarks68`), so they sit where the *teacher* puts each point. That
teacher follows the 300W annotation (the brows' upper edge, the nose bridge evenly spaced down to
the tip as seen from the front, the nostrils' outer wings), while the BFM's landmark vertices put
the bridge points 2–6 % of the face box lower, the brows' inner ends lower and the nostrils
narrower. :func:`teacher_offsets` measures that gap on the two mean faces, with no benchmark data:
MediaPipe's canonical face (468 vertices, cm, read from the FaceLandmarker task file's geometry
metadata) mapped to the 68 by the teacher's own rule, and the BFM template aligned to it by a
similarity on the inner points; each inner point's residual (BFM − teacher) is turned into
model space by the similarity that aligns the teacher's 68 with the model's mean landmarks, and
added to the predicted landmark (``inner`` of :class:`HiddenContour`) whatever the pose. It was
measured on AFLW2000-3D only after the rule was fixed (README, model card). The ICT-vertex version
of the same idea (BFM template − ICT landmark vertex) made the score worse, as the encoder had
already absorbed the ICT-vs-teacher differences.

Frames: model space (metres; at zero pose x towards image right, y up, z towards the camera); world = ``R·v + t`` with the crop camera's centre at ``(0, 0, distance)``
(:func:`recon_cli.pipeline.reconstruct.crop_geometry`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon_cli.errors import InputError

TEMPLATE_FILE = "similarity_Lm3D_all.mat"
TEACHER_FILE = "face_landmarker.task"  # MediaPipe's FaceLandmarker bundle: its canonical face mesh
_TEACHER_MEMBER = "geometry_pipeline_metadata_landmarks.binarypb"
#: jaw rules of ``recon eval --contour`` for the encoder: hidden + spacing, hidden only, none
JAW_RULES = ("bfm", "bfm-hidden", "model")
JAW = np.arange(17)
INNER = np.arange(17, 68)  # brows, nose, eyes, mouth: where the two conventions agree (0.34 cm rms)


def default_template_path(aflw_dir: str | Path) -> Path:
    """Where the development data keeps the template: ``<aflw2000-3d>/../bfm-topology/``."""
    return Path(aflw_dir).resolve().parent / "bfm-topology" / TEMPLATE_FILE


def default_teacher_path(aflw_dir: str | Path) -> Path:
    """Where the development data keeps MediaPipe's task bundle: ``<aflw2000-3d>/../mediapipe/``."""
    return Path(aflw_dir).resolve().parent / "mediapipe" / TEACHER_FILE


def load_teacher_canonical(path: str | Path) -> np.ndarray:
    """MediaPipe's canonical face ``(468, 3) float64`` (cm; x right, y up, z towards the viewer) from
    a FaceLandmarker ``.task`` bundle (a zip holding ``geometry_pipeline_metadata_landmarks.binarypb``)."""
    import zipfile

    path = Path(path)
    hint = ("pass --teacher-mesh PATH to MediaPipe's face_landmarker.task, "
            "or --inner model --contour bfm-hidden to score the inner points as the encoder (or MediaPipe) "
            "gives them and the jaw without the teacher's spacing")
    if not path.is_file():
        raise InputError(f"MediaPipe task bundle not found: {path}", hint=hint)
    try:
        from mediapipe.tasks.cc.vision.face_geometry.proto import geometry_pipeline_metadata_pb2 as gp

        with zipfile.ZipFile(path) as z:
            meta = gp.GeometryPipelineMetadata.FromString(z.read(_TEACHER_MEMBER))
        mesh = meta.canonical_mesh
        stride = 5  # VERTEX_PT: x, y, z, u, v
        vb = np.asarray(mesh.vertex_buffer, dtype=np.float64)
        if mesh.vertex_type != 0 or vb.size % stride:
            raise ValueError(f"vertex type {mesh.vertex_type}, {vb.size} floats")
        verts = vb.reshape(-1, stride)[:, :3]
    except Exception as e:  # noqa: BLE001 (zip, protobuf and shape errors alike)
        raise InputError(f"{path}: cannot read MediaPipe's canonical face mesh ({type(e).__name__}: {e})",
                         hint=hint) from None
    if verts.shape[0] < 468 or not np.isfinite(verts).all():
        raise InputError(f"{path}: the canonical mesh has {verts.shape[0]} vertices, expected 468", hint=hint)
    return verts[:468]


def load_bfm_template(path: str | Path) -> np.ndarray:
    """The BFM mean-shape 68 landmarks ``(68, 3) float64`` (any unit) from a ``.mat`` with key ``lm``."""
    path = Path(path)
    hint = (f"pass --bfm-template PATH to Deep3DFaceRecon's BFM/{TEMPLATE_FILE}, "
            "or --contour model --inner model to score the points as the model (or MediaPipe) gives them")
    if not path.is_file():
        raise InputError(f"BFM landmark template not found: {path}", hint=hint)
    try:
        from scipy.io import loadmat

        lm = np.asarray(loadmat(str(path))["lm"], dtype=np.float64)
    except Exception as e:  # noqa: BLE001 (scipy raises several types for a bad file)
        raise InputError(f"{path}: cannot read a 68×3 'lm' array ({type(e).__name__}: {e})", hint=hint) from None
    if lm.shape != (68, 3) or not np.isfinite(lm).all():
        raise InputError(f"{path}: 'lm' is {lm.shape}, expected 68×3 finite landmarks", hint=hint)
    return lm


def similarity_3d(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares ``s, R, t`` with ``s·R·src + t ≈ dst`` (Umeyama; ``(N, 3)`` points, proper rotation)."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    U, S, Vt = np.linalg.svd(b.T @ a)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    s = float((S * np.diag(D)).sum() / (a ** 2).sum())
    return s, R, md - s * R @ ms


def template_in_model_frame(model, template: np.ndarray) -> np.ndarray:
    """The template ``(68, 3)`` mapped into ``model``'s space by the similarity that best aligns its
    inner points 17–67 with the model's mean-shape landmark vertices (metres)."""
    lm = np.asarray(model.mean_shape, dtype=np.float64)[model.landmarks68]
    s, R, t = similarity_3d(template[INNER], lm[INNER])
    return s * template @ R.T + t


def teacher_gap(template: np.ndarray, teacher_mesh: np.ndarray) -> np.ndarray:
    """``(68, 3)``: BFM template − the teacher's 68 on MediaPipe's canonical face (its frame and
    units, cm), after the similarity on 17–67 that aligns the template to the teacher; zero on the jaw."""
    from recon_cli.face.landmarks68 import mesh_to_68_3d

    return _gap(template, mesh_to_68_3d(teacher_mesh))


def _gap(template: np.ndarray, teacher68: np.ndarray) -> np.ndarray:
    s, R, t = similarity_3d(template[INNER], teacher68[INNER])
    gap = (s * template @ R.T + t) - teacher68
    gap[JAW] = 0.0
    return gap


def teacher_offsets(model, template: np.ndarray, teacher_mesh: np.ndarray) -> np.ndarray:
    """``(68, 3)`` metres, model space: the BFM convention's offset from the teacher's point for the
    inner points 17–67 (zero on the jaw). Module docstring: :func:`teacher_gap`, turned and scaled
    into model space by the similarity that aligns the teacher's 68 with the model's mean landmarks."""
    from recon_cli.face.landmarks68 import mesh_to_68_3d

    teacher = mesh_to_68_3d(teacher_mesh)
    lm = np.asarray(model.mean_shape, dtype=np.float64)[model.landmarks68]
    s2, R2, _ = similarity_3d(teacher[INNER], lm[INNER])
    return s2 * _gap(template, teacher) @ R2.T


def _jaw_arc(jaw: np.ndarray) -> np.ndarray:
    """``(17,)`` arc length from point 0 to each point along ``jaw (17, 3)``, in x, y only (the
    length a frontal photo shows)."""
    return np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(jaw[:, :2], axis=0), axis=1))]


def jaw_fractions(jaw: np.ndarray) -> np.ndarray:
    """``jaw (17, 3)`` points of a frontal face → ``(17,)`` arc-length fractions along them
    (:func:`_jaw_arc`), 0 at point 0, 1 at point 16."""
    arc = _jaw_arc(jaw)
    return arc / arc[-1]


def jaw_spacing(jaw: np.ndarray, template: np.ndarray, teacher68: np.ndarray) -> np.ndarray:
    """``(68, 3)`` offsets (``jaw``'s frame and units; zero off the jaw) that slide each of the 17 jaw
    points of ``jaw (17, 3)`` (a mean face's) along its own polyline to the BFM's spacing.

    The teacher (MediaPipe's face oval, :mod:`recon_cli.face.landmarks68`) spaces the 17 points
    evenly along the visible outline; the BFM's landmark vertices sit at other fractions of the
    jaw's length (the template's points 2–6 and 10–14 1–2 % of it further from the chin). Point k
    moves by (BFM fraction − teacher fraction) × the polyline's length, along the polyline, so the
    jaw keeps its shape; the ends and the chin stay. No benchmark data: the two mean faces only."""
    shift = jaw_fractions(template[JAW]) - jaw_fractions(teacher68[JAW])
    arc = _jaw_arc(jaw)
    out = np.zeros((68, 3))
    for k in JAW:
        s = float(np.clip(arc[k] + shift[k] * arc[-1], 0.0, arc[-1]))
        i = min(int(np.searchsorted(arc, s, side="right")) - 1, len(arc) - 2)
        w = (s - arc[i]) / (arc[i + 1] - arc[i])
        out[k] = (1 - w) * jaw[i] + w * jaw[i + 1] - jaw[k]
    return out


def model_jaw_spacing(model, template: np.ndarray, teacher_mesh: np.ndarray) -> np.ndarray:
    """:func:`jaw_spacing` on ``model``'s mean-shape landmark vertices: ``(68, 3)`` metres, model space."""
    from recon_cli.face.landmarks68 import mesh_to_68_3d

    lm = np.asarray(model.mean_shape, dtype=np.float64)[model.landmarks68]
    return jaw_spacing(lm[JAW], template, mesh_to_68_3d(teacher_mesh))


def inner_settings(template_path, teacher_path) -> dict:
    """What a predictor records of its inner-point rule: ``bfm`` with both files, else ``model``."""
    on = template_path is not None and teacher_path is not None
    return {"rule": "bfm" if on else "model", "template": str(template_path) if on else None,
            "teacher": str(teacher_path) if on else None}


@dataclass
class TeacherInner:
    """The same inner-point convention for MediaPipe's own points (the ``mediapipe`` baseline):
    each image's mesh is a (weak-perspective) copy of the canonical face, so the canonical-frame
    gap is carried onto it by the similarity that aligns the canonical face with that mesh.

    ``canonical (468, 3)`` cm, x right, y up, z towards the viewer; ``gap (68, 3)``: :func:`teacher_gap`.
    """

    canonical: np.ndarray
    gap: np.ndarray

    @classmethod
    def from_template(cls, template: np.ndarray, teacher_mesh: np.ndarray, inner: bool = True,
                      spacing: bool = False) -> "TeacherInner":
        """``inner``: the inner points' gap (:func:`teacher_gap`); ``spacing``: the jaw points slid to
        the BFM's spacing along the canonical face's own jaw (:func:`jaw_spacing`)."""
        from recon_cli.face.landmarks68 import mesh_to_68_3d

        canonical = np.asarray(teacher_mesh, np.float64)
        gap = teacher_gap(template, canonical) if inner else np.zeros((68, 3))
        if spacing:
            t68 = mesh_to_68_3d(canonical)
            gap = gap + jaw_spacing(t68[JAW], template, t68)
        return cls(canonical=canonical, gap=gap)

    def points68(self, mesh: np.ndarray) -> np.ndarray:
        """``mesh (468|478, 3)`` image px (x right, y down, z = MediaPipe's relative depth, larger =
        further) → ``(68, 2) float64`` px: the teacher's 68 with the inner points in the BFM convention."""
        return self.points_and_jacobian(mesh)[0]

    def points_and_jacobian(self, mesh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`points68` and its derivative by an offset added to :attr:`gap`: ``(68, 2)`` px and
        ``(2, 3)`` px per canonical unit (the same for every point: the mesh is a weak-perspective copy)."""
        from recon_cli.face.landmarks68 import mesh_to_68_3d

        flip = np.array([1.0, -1.0, -1.0])  # image frame → the canonical face's (y up, z towards the viewer)
        m = np.asarray(mesh, np.float64)[:468] * flip
        s, R, _ = similarity_3d(self.canonical, m)
        out = (mesh_to_68_3d(m) + s * self.gap @ R.T) * flip
        return out[:, :2], s * (flip[:, None] * R)[:2]


@dataclass
class HiddenContour:
    """The BFM convention for the 68 points: BFM-depth jaw points where the jaw faces away from the
    camera, and optionally the BFM offsets of the inner points (module docstring).

    ``offsets (68, 3)``: metres, model space, zero outside the jaw (all zero: the jaw stays the
    model's); ``normals (68, 3)``: unit mean-shape vertex normals of the 68 landmark vertices, model
    space; ``inner (68, 3)``: metres, model space, added whatever the pose (:func:`teacher_offsets`;
    zero: the encoder's own inner points); ``visible (68, 3)``: metres, model space, zero outside
    the jaw, added to the jaw points the hidden rule leaves where they are (:func:`model_jaw_spacing`:
    the BFM's spacing along the jaw; None: off).
    """

    offsets: np.ndarray
    normals: np.ndarray
    inner: np.ndarray | None = None
    visible: np.ndarray | None = None

    @classmethod
    def from_template(cls, model, template: np.ndarray, teacher_mesh: np.ndarray | None = None,
                      jaw: bool = True, spacing: bool = False, inner: bool = True) -> "HiddenContour":
        """``jaw``: the hidden-contour rule for 0–16; ``spacing``: the visible jaw points slid to the
        BFM's spacing (:func:`model_jaw_spacing`; needs ``teacher_mesh``); ``inner`` with
        ``teacher_mesh (468, 3)``, MediaPipe's canonical face: the inner-point offsets (:func:`teacher_offsets`)."""
        from recon_cli.mesh.topology import vertex_normals

        if spacing and teacher_mesh is None:
            raise ValueError("the jaw spacing rule needs the teacher's canonical face (teacher_mesh)")
        mean = np.asarray(model.mean_shape, dtype=np.float64)
        offsets = np.zeros((68, 3))
        if jaw:
            offsets[JAW] = (template_in_model_frame(model, template) - mean[model.landmarks68])[JAW]
        normals = vertex_normals(mean, np.asarray(model.triangles))[model.landmarks68]
        inner_off = teacher_offsets(model, template, teacher_mesh) if inner and teacher_mesh is not None else None
        visible = model_jaw_spacing(model, template, teacher_mesh) if spacing else None
        return cls(offsets=offsets, normals=normals, inner=inner_off, visible=visible)

    def hidden(self, lm_model: np.ndarray, R: np.ndarray, trans: np.ndarray, distance: float) -> np.ndarray:
        """``(N, 68) bool``: jaw landmarks whose turned normal points away from the camera centre.

        ``lm_model (N, 68, 3)`` m, ``R (N, 3, 3)``, ``trans (N, 3)`` m, ``distance`` m."""
        world = np.einsum("bvj,bij->bvi", lm_model, R) + trans[:, None]
        n_world = np.einsum("vj,bij->bvi", self.normals, R)
        to_cam = np.array([0.0, 0.0, distance]) - world
        out = (n_world * to_cam).sum(-1) < 0
        out[:, INNER] = False
        return out

    def apply(self, lm_model: np.ndarray, R: np.ndarray, trans: np.ndarray, distance: float) -> np.ndarray:
        """The 68 landmarks ``(N, 68, 3)`` model space, hidden jaw points moved to the BFM contour, the
        visible ones by :attr:`visible` and the inner points by :attr:`inner` (each when set)."""
        out = lm_model
        if self.offsets.any() or self.visible is not None:
            hidden = self.hidden(lm_model, R, trans, distance)[..., None]
            if self.offsets.any():  # the hidden-contour rule is on (not with jaw=False)
                out = out + self.offsets[None] * hidden
            if self.visible is not None:  # zero off the jaw, so only the visible jaw points move
                out = out + self.visible[None] * ~hidden
        return out if self.inner is None else out + self.inner[None]
