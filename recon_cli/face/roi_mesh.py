"""MediaPipe's FaceMesh landmark model on a given face box, without its detector.

Used where the box is known but the detector cannot be relied on: the ``--crop gt`` protocol of
``recon eval`` (and its detector misses), and ``recon prep --roi-fallback`` on pre-cropped
datasets whose profile faces BlazeFace does not find.
"""

from __future__ import annotations

import numpy as np

_ROI_GRAPH = """
input_stream: "image"
input_stream: "roi"
output_stream: "face_landmarks"
input_side_packet: "with_attention"
node {
  calculator: "FaceLandmarkCpu"
  input_stream: "IMAGE:image"
  input_stream: "ROI:roi"
  input_side_packet: "WITH_ATTENTION:with_attention"
  output_stream: "LANDMARKS:face_landmarks"
}
"""


class RoiFaceMesh:
    """MediaPipe's FaceMesh landmark model (``FaceLandmarkCpu``, the subgraph behind FaceMesh) run on
    a given region, **without its detector** (see the module docstring).

    The face-presence threshold is set to 0 so the model always returns its 478 (``refine``) points
    for the box it is given, as every method of the published tables does. Coordinates as
    :mod:`recon_cli.face.mediapipe_mesh`: input-image px, ``z`` relative depth scaled like x.
    The ROI is passed with rotation 0, so MediaPipe's projection back from the ROI (which warns
    that it assumes a square ROI without image dimensions) is exact for any image aspect: the
    box is square in pixels and no rotation mixes the normalised x and y.
    """

    def __init__(self, refine: bool = True):
        from mediapipe.python.solution_base import PacketDataType, SolutionBase

        self._graph = SolutionBase(
            graph_config=_ROI_GRAPH, side_inputs={"with_attention": refine}, outputs=["face_landmarks"],
            calculator_params={"facelandmarkcpu__ThresholdingCalculator.threshold": 0.0},
            stream_type_hints={"roi": PacketDataType.PROTO, "face_landmarks": PacketDataType.PROTO})

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None

    def mesh(self, image_rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        """``box``: (x0, y0, x1, y1) px → mesh (478, 3) float32 px (468 without refine)."""
        from mediapipe.framework.formats import rect_pb2

        h, w = image_rgb.shape[:2]
        x0, y0, x1, y1 = (float(v) for v in box)
        roi = rect_pb2.NormalizedRect(x_center=(x0 + x1) / 2 / w, y_center=(y0 + y1) / 2 / h,
                                      width=(x1 - x0) / w, height=(y1 - y0) / h, rotation=0.0)
        res = self._graph.process({"image": np.ascontiguousarray(image_rgb), "roi": roi})
        if res.face_landmarks is None:  # cannot happen with threshold 0; kept as a clear failure
            raise RuntimeError("MediaPipe's landmark model returned no points for the ground-truth box")
        return np.array([(p.x * w, p.y * h, p.z * w) for p in res.face_landmarks.landmark], dtype=np.float32)

    def face(self, image_rgb: np.ndarray, box: np.ndarray):
        """A :class:`recon_cli.face.mediapipe_mesh.Face` from the mesh on ``box`` (score 0: no
        detector vouched for it), usable wherever a detected face is (alignment, masks)."""
        from recon_cli.face.landmarks68 import five_from_68, mesh_to_68
        from recon_cli.face.mediapipe_mesh import Face

        mesh = self.mesh(image_rgb, box)
        lm68 = mesh_to_68(mesh)
        return Face(mesh=mesh, lm68=lm68, lm5=five_from_68(lm68), bbox=np.asarray(box, dtype=np.float32), score=0.0)
