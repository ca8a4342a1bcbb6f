"""Differentiable perspective-correct barycentrics and vertex-attribute interpolation at the
visible pixels, with hand-written backward passes (custom ``torch.autograd.Function``s).

Autograd through the dozens of element-wise ops of the soft pass costs about twice the forward
and materialises every intermediate; the analytic backward below needs a handful of fused
expressions and one scatter per input. Vertex data is laid out as planes ``(coord, P)`` (structure of arrays:
gathers and scatters of single floats are about twice as fast as of 3-float rows). Shapes: ``N``
covered pixels, ``P = B·V`` flat vertices.

For pixel centre ``p`` and the winning triangle's screen vertices ``(x_k, y_k, z_k)``,
``d_k = (x_k, y_k) − p``, the edge functions are ``e_0 = d_1 × d_2``, ``e_1 = d_2 × d_0``,
``e_2 = d_0 × d_1`` (2-D cross products, ``Σ e_k = 2A``). With ``q_k = e_k / z_k`` and
``S = Σ q_k``: barycentrics ``b_k = q_k / S`` (perspective-correct), depth ``z = Σ e_k / S``.
Gradients flow to ``x, y, z`` of the three vertices and to the attributes; not through the
choice of triangle (no silhouette gradients). Double backward is not supported.
"""

from __future__ import annotations

import torch


class _Barycentric(torch.autograd.Function):
    @staticmethod
    def forward(ctx, planes: torch.Tensor, vk: torch.Tensor, px: torch.Tensor, py: torch.Tensor):
        """``planes (3, P)`` screen vertices as coordinate planes (u, v, z_c), ``vk (3, N)`` int64,
        ``px, py (N,)`` pixel centres → ``bary (3, N)``, ``depth (N,)``."""
        G = planes.index_select(1, vk.reshape(-1)).view(3, 3, -1)  # (coord, vertex k, N)
        dx = G[0] - px
        dy = G[1] - py
        z = G[2]
        e = torch.stack([dx[1] * dy[2] - dx[2] * dy[1], dx[2] * dy[0] - dx[0] * dy[2], dx[0] * dy[1] - dx[1] * dy[0]])
        q = e / z
        inv = 1.0 / q.sum(0)
        bary = q * inv
        depth = e.sum(0) * inv
        ctx.save_for_backward(vk, dx, dy, z, q, bary, depth, inv)
        ctx.n_verts = planes.shape[1]
        return bary, depth

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_bary, g_depth):
        vk, dx, dy, z, q, bary, depth, inv = ctx.saved_tensors
        # b_k = q_k / S  →  ∂L/∂q_j = (g_j − Σ_k g_k b_k) / S ;  depth = E / S.
        if g_bary is None:
            g_bary = torch.zeros_like(bary)
        gq = (g_bary - (g_bary * bary).sum(0)) * inv
        if g_depth is not None:
            gq = gq - g_depth * depth * inv
            ge = gq / z + g_depth * inv
        else:
            ge = gq / z
        gz = -gq * q / z
        gx = torch.stack([ge[2] * dy[1] - ge[1] * dy[2], ge[0] * dy[2] - ge[2] * dy[0], ge[1] * dy[0] - ge[0] * dy[1]])
        gy = torch.stack([ge[1] * dx[2] - ge[2] * dx[1], ge[2] * dx[0] - ge[0] * dx[2], ge[0] * dx[1] - ge[1] * dx[0]])
        g = torch.stack([gx, gy, gz]).view(3, -1)  # (coord, 3N)
        out = g.new_zeros(3, ctx.n_verts).index_add_(1, vk.reshape(-1), g)
        return out, None, None, None


class _Interpolate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, planes: torch.Tensor, vk: torch.Tensor, bary: torch.Tensor):
        """``planes (C, P)`` attribute planes, ``vk (3, N)``, ``bary (3, N)`` → ``(C, N)`` =
        ``Σ_k b_k · attr[:, vk_k]``."""
        C = planes.shape[0]
        G = planes.index_select(1, vk.reshape(-1)).view(C, 3, -1)
        out = G[:, 0] * bary[0] + G[:, 1] * bary[1] + G[:, 2] * bary[2]
        ctx.save_for_backward(vk, bary, G if ctx.needs_input_grad[2] else None)
        ctx.n_verts = planes.shape[1]
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        vk, bary, G = ctx.saved_tensors
        g_attr = g_bary = None
        C = g.shape[0]
        if ctx.needs_input_grad[0]:
            contrib = (g[:, None, :] * bary).view(C, -1)  # (C, 3N)
            g_attr = g.new_zeros(C, ctx.n_verts).index_add_(1, vk.reshape(-1), contrib)
        if ctx.needs_input_grad[2]:
            g_bary = G[0] * g[0]
            for c in range(1, C):
                g_bary = g_bary + G[c] * g[c]
        return g_attr, None, g_bary


def barycentric(planes: torch.Tensor, vk: torch.Tensor, px: torch.Tensor, py: torch.Tensor):
    """Perspective-correct barycentrics ``(3, N)`` and depth ``(N,)`` (metres) at pixel centres
    ``px, py (N,)`` of triangles with flat vertex ids ``vk (3, N)`` into the screen-vertex planes
    ``planes (3, P)`` (rows ``u px, v px, z_c m``). Differentiable w.r.t. ``planes``."""
    return _Barycentric.apply(planes, vk, px, py)


def interpolate_vis(planes: torch.Tensor, vk: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    """Attribute planes ``(C, P)`` interpolated at the covered pixels: ``(C, N)``;
    differentiable w.r.t. ``planes`` and ``bary (3, N)``."""
    return _Interpolate.apply(planes, vk, bary)
