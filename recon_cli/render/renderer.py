"""Coefficients → rendered face: decode the morphable model, pose, shade, project, rasterise.

Functional core :func:`render` plus the thin :class:`Renderer` ``nn.Module``. Everything is
differentiable w.r.t. the coefficient vector (through shape, albedo, pose, light; not through
visibility/silhouettes, see :mod:`recon_cli.render.rasterize`).

Pipeline (frames from :mod:`recon_cli.render.camera`):

1. ``CoeffLayout.split`` → id, exp, tex, angles, light, trans.
2. ``S = model.shape(id, exp)`` (model space, metres), ``T = model.albedo(tex)`` ([0, 1] RGB).
3. Vertex normals of ``S`` (area-weighted sum of incident face normals), rotated into the
   world frame: ``n_w = R n``.
4. Vertex colours: Lambertian SH shading ``T ⊙ E(n_w)`` (:mod:`recon_cli.render.lighting`),
   shaded per vertex and interpolated per pixel (Gouraud, as Deep3DFaceRecon).
5. ``v_w = R S + t``; ``(u, v), z_c = project(v_w)``; rasterise ``(u, v, z_c)``; interpolate.
6. 68 landmarks: the projected landmark vertices, crop pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from recon_cli.coeffs import CoeffLayout
from recon_cli.render.camera import CameraConfig, euler_to_rotation, project
from recon_cli.render.lighting import INIT_LIT, shade
from recon_cli.render.normals import vertex_normals
from recon_cli.render.rasterize import Fragments, interpolate, rasterize


@dataclass
class RenderConfig:
    """Renderer settings (defaults: the reference configuration).

    Attributes:
        camera: the crop camera (224 px, focal 1015 px, principal point 112, distance 1 m).
        n_light: 9 (white SH light, the paper) or 27 (RGB SH).
        init_lit: 9 constants added to the predicted SH coefficients (Deep3DFaceRecon: zero
            coefficients = ambient light 0.8).
        near: metres; triangles with a vertex at ``z_c <= near`` are dropped.
        cull_backfaces: drop back-facing triangles before the z-test (the z-buffer resolves
            visibility either way; culling only saves work and avoids back-face bleed-through
            at grazing angles).
        clamp: clip the image to [0, 1] (zero gradient where the shading saturates).
        backend: visibility pass: ``"torch"`` (built in) or ``"pytorch3d"`` (where installed).
        background: value of non-face pixels in ``RenderOutput.image``.
    """

    camera: CameraConfig = field(default_factory=CameraConfig)
    n_light: int = 9
    init_lit: tuple[float, ...] = INIT_LIT
    near: float = 0.01
    cull_backfaces: bool = False
    clamp: bool = True
    background: float = 0.0
    backend: str = "torch"


@dataclass
class RenderOutput:
    """A rendered batch (``S`` = ``camera.size``).

    Attributes:
        image: ``(B, 3, S, S)`` contiguous RGB in [0, 1] (when ``clamp``), ``background`` off the face.
        mask: ``(B, 1, S, S)`` float, 1 where the face covers the pixel centre.
        landmarks: ``(B, 68, 2)`` projected landmark vertices, crop pixels (u right, v down).
        verts: ``(B, V, 3)`` world-frame vertices, metres (posed, before projection).
        normals: ``(B, V, 3)`` world-frame unit vertex normals.
        colors: ``(B, V, 3)`` shaded vertex colours (not clipped).
        albedo: ``(B, V, 3)`` vertex albedo.
        screen: ``(B, V, 3)`` ``(u px, v px, z_c m)`` as rasterised.
        fragments: the rasteriser's :class:`Fragments`.
    """

    image: torch.Tensor
    mask: torch.Tensor
    landmarks: torch.Tensor
    verts: torch.Tensor
    normals: torch.Tensor
    colors: torch.Tensor
    albedo: torch.Tensor
    screen: torch.Tensor
    fragments: Fragments


def render(coeffs: torch.Tensor, model, cfg: RenderConfig = RenderConfig()) -> RenderOutput:
    """Render ``coeffs (B, total)`` (layout ``CoeffLayout.for_model(model, cfg.n_light)``) with
    ``model`` (:class:`~recon_cli.morphable.MorphableModel`); float32 or float64, any device."""
    layout = CoeffLayout.for_model(model, cfg.n_light)
    c = layout.split(coeffs)
    t = model.torch_arrays(coeffs.device, coeffs.dtype)
    shape = model.shape(c["id"], c["exp"])  # (B, V, 3) model space
    albedo = model.albedo(c["tex"])
    R = euler_to_rotation(c["angles"])  # (B, 3, 3)
    # Area-weighted vertex normals by scatter-adding face normals over the triangle list: the
    # same sum as gathering through ``model.vertex_faces`` (tested equal) but its backward needs
    # no (3, B, V, valence) expansion, ~3× cheaper for a 70k-triangle mesh on CPU.
    normals = _rotate(vertex_normals(shape, t["triangles"]), R)
    colors = shade(albedo, normals, c["light"], cfg.init_lit)
    verts = shape @ R.transpose(-1, -2) + c["trans"][:, None, :]
    uv, z = project(verts, cfg.camera)
    screen = torch.cat([uv, z[..., None]], -1)
    S = cfg.camera.size
    frags = rasterize(screen, t["triangles"], S, near=cfg.near, cull_backfaces=cfg.cull_backfaces, backend=cfg.backend)
    img = interpolate(colors, frags, background=cfg.background).permute(0, 3, 1, 2)  # (B, 3, S, S) view
    img = img.clamp(0.0, 1.0).contiguous() if cfg.clamp else img.contiguous()
    return RenderOutput(image=img, mask=frags.mask[:, None].to(coeffs.dtype),
                        landmarks=uv[:, t["landmarks68"]], verts=verts, normals=normals, colors=colors,
                        albedo=albedo, screen=screen, fragments=frags)


def _rotate(n: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """``R (B, 3, 3) · n`` for ``n (B, V, 3)`` (any strides; component planes stay contiguous when
    ``n`` is a view of a ``(3, B, V)`` buffer) → ``(B, V, 3)`` view of a ``(3, B, V)`` buffer."""
    x, y, z = n.unbind(-1)
    r = R[:, :, :, None]  # (B, 3, 3, 1)
    return torch.stack([r[:, i, 0] * x + r[:, i, 1] * y + r[:, i, 2] * z for i in range(3)]).permute(1, 2, 0)


def composite(rendered: torch.Tensor, mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Face pixels from the render, the rest from the input.

    ``rendered (B, 3, S, S)``, ``mask (B, 1, S, S)`` in [0, 1] (1 = face), ``image (B, 3, S, S)``
    → ``(B, 3, S, S)`` = ``mask · rendered + (1 − mask) · image``."""
    return mask * rendered + (1 - mask) * image


class Renderer(torch.nn.Module):
    """``nn.Module`` around :func:`render` for a fixed model and config (no parameters).

    ``forward(coeffs (B, total)) → RenderOutput``; ``layout`` gives the coefficient layout.
    """

    def __init__(self, model, cfg: RenderConfig = RenderConfig()):
        super().__init__()
        self.model, self.cfg = model, cfg
        self.layout = CoeffLayout.for_model(model, cfg.n_light)

    def forward(self, coeffs: torch.Tensor) -> RenderOutput:
        return render(coeffs, self.model, self.cfg)

    def zero_coeffs(self, batch: int = 1, device=None, dtype=torch.float32) -> torch.Tensor:
        """Neutral coefficients ``(batch, total)``: mean face, zero pose, ambient light."""
        return torch.zeros(batch, self.layout.total, device=device, dtype=dtype)
