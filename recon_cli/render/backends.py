"""Optional visibility backends for the hard (z-buffer) pass.

The project's own pure-PyTorch z-buffer (:func:`recon_cli.render.rasterize.rasterize_hard`) is
the default and always available. Where pytorch3d is installed (it is not on PyPI: build it
from source), ``backend="pytorch3d"`` lets its CUDA/C++ rasteriser decide visibility instead;
the differentiable soft pass (barycentrics, interpolation, gradients) stays the project's own,
so both backends give the same kind of :class:`~recon_cli.render.rasterize.Fragments` and the
same gradients.

Conversion to pytorch3d's NDC (square images, documented in ``pytorch3d.renderer.cameras``):
+X points left and +Y up, pixel centres at ``1 − (2j + 1)/S``; so ``x_ndc = 1 − 2u/S``,
``y_ndc = 1 − 2v/S`` for our pixel coordinates ``(u, v)`` (origin at the top-left corner, +v
down), and ``z`` = camera depth ``z_c``. Both axes flip, so screen orientation (and our
front-face test) is unchanged. Triangles the project's rules drop (a vertex at ``z_c <= near``,
non-finite, degenerate, back-facing when culling) are removed before pytorch3d sees them.
"""

from __future__ import annotations

import torch

BACKENDS = ("torch", "pytorch3d")


def available_backends() -> list[str]:
    """Backends usable in this environment (``"torch"`` always)."""
    out = ["torch"]
    try:
        import pytorch3d.renderer  # noqa: F401

        out.append("pytorch3d")
    except ImportError:
        pass
    return out


@torch.no_grad()
def rasterize_hard_pytorch3d(screen: torch.Tensor, faces: torch.Tensor, image_size, *, near: float = 1e-2,
                             cull_backfaces: bool = False, eps: float = 1e-10, bin_size: int | None = None) -> torch.Tensor:
    """Same contract as :func:`recon_cli.render.rasterize.rasterize_hard` (``tri_idx (B, H, W)
    int64``, −1 background), computed with ``pytorch3d.renderer.mesh.rasterize_meshes``.

    Raises ImportError (with the reason) where pytorch3d is not installed; only square images."""
    try:
        from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
        from pytorch3d.structures import Meshes
    except ImportError as e:
        raise ImportError(f"the pytorch3d backend needs pytorch3d (build it from source): {e}") from None
    from recon_cli.render.rasterize import _size, signed_area

    H, W = _size(image_size)
    if H != W:
        raise ValueError("the pytorch3d backend handles square images only")
    B, V, _ = screen.shape
    f = faces.to(device=screen.device, dtype=torch.int64)
    s = screen.detach()
    tri = s[:, f]  # (B, F, 3 verts, 3)
    area = signed_area(tri[:, :, 0, :2], tri[:, :, 1, :2], tri[:, :, 2, :2])
    keep = torch.isfinite(tri).all(-1).all(-1) & (tri[..., 2] > near).all(-1) & (area.abs() > eps)
    if cull_backfaces:
        keep &= area < 0
    ndc = torch.stack([1 - 2 * s[..., 0] / W, 1 - 2 * s[..., 1] / H, s[..., 2]], -1)
    ndc = torch.nan_to_num(ndc, nan=0.0, posinf=0.0, neginf=0.0)
    kept = [keep[b].nonzero().squeeze(1) for b in range(B)]
    meshes = Meshes(verts=list(ndc), faces=[f[k] for k in kept])
    pix_to_face, _, _, _ = rasterize_meshes(meshes, image_size=H, blur_radius=0.0, faces_per_pixel=1,
                                            bin_size=bin_size, perspective_correct=False, cull_backfaces=False)
    p2f = pix_to_face[..., 0]  # (B, H, W) packed index over the kept faces of all meshes
    offsets = torch.tensor([0] + [len(k) for k in kept], device=screen.device).cumsum(0)[:-1]
    out = torch.full_like(p2f, -1)
    for b in range(B):
        hit = p2f[b] >= 0
        out[b][hit] = kept[b][p2f[b][hit] - offsets[b]]
    return out
