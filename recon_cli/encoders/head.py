"""Coefficient head: pooled backbone features → the :class:`~recon_cli.coeffs.CoeffLayout` vector.

One linear layer ``(B, C) → (B, layout.total)`` whose weight and bias start at exactly zero, so
an untrained encoder outputs zero coefficients: the mean face, neutral, ambient light, frontal
(angles 0) and centred (trans 0).

The output is multiplied by a fixed per-group scale (a buffer saved with the weights, not
trained). Defaults: 1 for every group except ``trans`` (0.1: translations are metres and a face
moves by centimetres, so one unit of the linear output is 10 cm). Since Adam's steps on the head
are roughly the same size for every output, the scale sets how fast each group moves.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recon_cli.coeffs import CoeffLayout

DEFAULT_GROUP_SCALE = {"id": 1.0, "exp": 1.0, "tex": 1.0, "angles": 1.0, "light": 1.0, "trans": 0.1}


class CoeffHead(nn.Module):
    """``(B, in_dim)`` features → ``(B, layout.total)`` coefficients (zero at initialisation).

    Args:
        in_dim: feature size of the backbone.
        layout: coefficient layout (sizes from the morphable model).
        group_scale: per-group output scale; missing groups use :data:`DEFAULT_GROUP_SCALE`.
    """

    def __init__(self, in_dim: int, layout: CoeffLayout, group_scale: dict[str, float] | None = None):
        super().__init__()
        unknown = set(group_scale or {}) - set(layout.sizes)
        if unknown:
            raise ValueError(f"unknown coefficient group(s) {sorted(unknown)}; groups: {list(layout.sizes)}")
        scales = {**DEFAULT_GROUP_SCALE, **(group_scale or {})}
        self.layout = layout
        self.fc = nn.Linear(in_dim, layout.total)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)
        scale = torch.cat([torch.full((n,), float(scales[g])) for g, n in layout.sizes.items()])
        self.register_buffer("scale", scale)

    def forward(self, feats: Tensor) -> Tensor:
        return self.fc(feats) * self.scale
