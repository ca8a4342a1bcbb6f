"""The encoder module: normalisation + backbone + coefficient head.

``forward(x)``: ``x (B, 3, S, S) float32`` RGB in [0, 1] → ``(B, layout.total) float32``
coefficients. ImageNet normalisation ``(x − mean) / std`` happens inside, so exported graphs take
the plain crop. No data-dependent Python control flow: the module traces for ONNX export.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recon_cli.coeffs import CoeffLayout
from recon_cli.encoders.head import CoeffHead

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Encoder(nn.Module):
    """Aligned crop → morphable-model coefficients.

    Attributes:
        arch: registry name (``resnet50``…), layout: the coefficient layout, size: crop side S.
        backbone: feature extractor with ``out_dim``; head: :class:`CoeffHead`.
    """

    def __init__(self, arch: str, backbone: nn.Module, layout: CoeffLayout, size: int = 224,
                 group_scale: dict[str, float] | None = None):
        super().__init__()
        self.arch, self.layout, self.size = arch, layout, int(size)
        self.backbone = backbone
        self.head = CoeffHead(backbone.out_dim, layout, group_scale)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone((x - self.mean) / self.std))
