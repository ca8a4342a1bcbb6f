"""Live 3-D view of the reconstructed face with Open3D (torch-free).

:class:`MeshViewer` opens an Open3D ``Visualizer`` window once, adds one ``TriangleMesh`` and
then updates its vertices in place every frame (``mesh.vertices = …; update_geometry;
poll_events; update_renderer``) — no geometry is re-created, so the view and the user's mouse
navigation persist.

Coordinates: the viewer takes ``verts_cam (V, 3)`` metres in the virtual camera frame of
:mod:`recon_cli.pipeline.reconstruct` (x right, y up, z towards the viewer, camera at the
origin), which is Open3D's own convention: the default view looks down −z, so the face appears
as the camera saw it. The view is fitted once to the first mesh; vertex colours are the model's
albedo when given (else a neutral grey), with per-vertex normals for Open3D's lighting.

Headless: ``visible=False`` renders off-screen (Mesa EGL on Linux, no display needed);
:meth:`MeshViewer.capture` returns the rendered ``(H, W, 3) float32`` image in [0, 1] — the
tests use it to check that the mesh is drawn. :func:`display_available` says whether a window
can be shown (``recon run`` shows one by default when it can).
"""

from __future__ import annotations

import os
import sys

import numpy as np

from recon_cli.errors import ReconError


def display_available() -> bool:
    """True when a GUI window can be opened (X11/Wayland display, or macOS/Windows)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class MeshViewer:
    """An Open3D window showing one (or more) live meshes.

    Args:
        triangles: ``(F, 3)`` vertex indices (counter-clockwise from outside).
        width, height: window size in pixels.
        visible: False renders off-screen (tests, headless capture).
        title: window title.
        background: RGB in [0, 1].
        max_meshes: meshes shown at once (one per face; extra faces are not shown).
    """

    def __init__(self, triangles: np.ndarray, *, width: int = 640, height: int = 480, visible: bool = True,
                 title: str = "recon — 3-D face", background=(0.12, 0.12, 0.14), max_meshes: int = 1):
        import open3d as o3d

        self.o3d = o3d
        self.vis = o3d.visualization.Visualizer()
        if not self.vis.create_window(window_name=title, width=width, height=height, visible=visible):
            raise ReconError("Open3D could not open a window (no display and no off-screen EGL)",
                             hint="run with --no-view on headless machines, or install Mesa EGL (libegl1) for off-screen rendering")
        opt = self.vis.get_render_option()
        if opt is not None:
            opt.background_color = np.asarray(background, dtype=np.float64)
            opt.mesh_show_back_face = True
        self.triangles = o3d.utility.Vector3iVector(np.asarray(triangles, dtype=np.int32))
        self.meshes: list = []
        self.shown: list[bool] = []
        self.max_meshes = max(1, int(max_meshes))
        self._fitted = False
        self.closed = False

    def _mesh(self, i: int):
        while len(self.meshes) <= i:
            m = self.o3d.geometry.TriangleMesh()
            m.triangles = self.triangles
            self.meshes.append(m)
            self.shown.append(False)
        return self.meshes[i]

    def update(self, verts_list: list[np.ndarray], colors_list: list[np.ndarray | None] | None = None) -> bool:
        """Show these meshes (``verts (V, 3)`` metres, camera frame; ``colors (V, 3)`` in [0, 1]).

        Meshes of faces that disappeared are emptied (hidden). Returns False when the user has
        closed the window."""
        if self.closed:
            return False
        o3d = self.o3d
        verts_list = list(verts_list)[: self.max_meshes]
        colors_list = list(colors_list or [None] * len(verts_list))
        for i in range(max(len(verts_list), len(self.meshes))):
            m = self._mesh(i)
            if i < len(verts_list):
                v = np.asarray(verts_list[i], dtype=np.float64)
                m.vertices = o3d.utility.Vector3dVector(v)
                c = colors_list[i] if i < len(colors_list) else None
                col = np.full_like(v, 0.78) if c is None else np.clip(np.asarray(c, dtype=np.float64), 0, 1)
                m.vertex_colors = o3d.utility.Vector3dVector(col)
                m.compute_vertex_normals()
            else:
                m.vertices = o3d.utility.Vector3dVector(np.zeros((0, 3)))
                m.vertex_colors = o3d.utility.Vector3dVector(np.zeros((0, 3)))
            if not self.shown[i]:
                if len(m.vertices) == 0:
                    continue
                # the first mesh fixes the view (reset_bounding_box); later ones keep it
                self.vis.add_geometry(m, reset_bounding_box=not self._fitted)
                self.shown[i] = True
                self._fitted = True
            else:
                self.vis.update_geometry(m)
        alive = self.vis.poll_events()
        self.vis.update_renderer()
        if alive is False:
            self.close()
            return False
        return True

    def capture(self) -> np.ndarray:
        """The current rendering as ``(H, W, 3) float32`` RGB in [0, 1]."""
        return np.asarray(self.vis.capture_screen_float_buffer(do_render=True), dtype=np.float32)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.vis.destroy_window()

    def __enter__(self) -> "MeshViewer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
