"""MobileFaceNet (Chen et al. 2018) as trained with ArcFace by Xiaoccer/MobileFaceNet_Pytorch.

Module and parameter names follow that implementation exactly, so its checkpoint
(``{'epoch', 'net_state_dict'}``) loads with ``strict=True``.

Input: ``(B, 3, 112, 96) float32`` RGB (H = 112, W = 96), normalised as ``(x·255 − 127.5) / 128``
(its data loaders). Output: ``(B, 128)`` embedding (not normalised).
"""

from __future__ import annotations

from torch import Tensor, nn

# expansion t, output channels c, repeats n, first stride s
SETTING = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))
INPUT_HW = (112, 96)
EMBED_DIM = 128


class ConvBlock(nn.Module):
    """conv → BN → PReLU (``linear=True`` drops the PReLU); ``dw=True``: depthwise conv."""

    def __init__(self, cin: int, cout: int, k, s: int, p: int, dw: bool = False, linear: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, p, groups=cin if dw else 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.prelu = None if linear else nn.PReLU(cout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn(self.conv(x))
        return x if self.prelu is None else self.prelu(x)


class Bottleneck(nn.Module):
    """Inverted residual: 1×1 expand → 3×3 depthwise (stride) → 1×1 linear project."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        mid = cin * expansion
        self.connect = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, mid, 1, 1, 0, bias=False), nn.BatchNorm2d(mid), nn.PReLU(mid),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.PReLU(mid),
            nn.Conv2d(mid, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout),
        )

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        return x + y if self.connect else y


class MobileFaceNet(nn.Module):
    """``(B, 3, 112, 96)`` normalised RGB → ``(B, 128)`` embedding."""

    input_hw = INPUT_HW
    embed_dim = EMBED_DIM

    def __init__(self):
        super().__init__()
        self.conv1 = ConvBlock(3, 64, 3, 2, 1)
        self.dw_conv1 = ConvBlock(64, 64, 3, 1, 1, dw=True)
        layers, cin = [], 64
        for t, c, n, s in SETTING:
            for i in range(n):
                layers.append(Bottleneck(cin, c, s if i == 0 else 1, t))
                cin = c
        self.blocks = nn.Sequential(*layers)
        self.conv2 = ConvBlock(128, 512, 1, 1, 0)
        # global depthwise conv over the final 7 × 6 map
        self.linear7 = ConvBlock(512, 512, (7, 6), 1, 0, dw=True, linear=True)
        self.linear1 = ConvBlock(512, 128, 1, 1, 0, linear=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.dw_conv1(self.conv1(x))
        x = self.conv2(self.blocks(x))
        x = self.linear1(self.linear7(x))
        return x.flatten(1)
