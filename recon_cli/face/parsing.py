"""Optional face parsing with BiSeNet (CelebAMask-HQ, 19 classes) to exclude occluders from masks.

Loads the widely used ``79999_iter.pth`` checkpoint of zllrunning/face-parsing.PyTorch: a
BiSeNet with a ResNet-18 context path whose ``res3b1`` features replace the spatial path. The
network below is written for that checkpoint's parameter names (``cp.resnet.layer1.0.conv1``,
``cp.arm16``, ``ffm.convblk``, ``conv_out``, …) so ``load_state_dict`` is strict.

Classes (CelebAMask-HQ order): 0 background, 1 skin, 2 l_brow, 3 r_brow, 4 l_eye, 5 r_eye,
6 eye_g (glasses), 7 l_ear, 8 r_ear, 9 ear_r (earring), 10 nose, 11 mouth, 12 u_lip, 13 l_lip,
14 neck, 15 neck_l (necklace), 16 cloth, 17 hair, 18 hat. :meth:`FaceParser.face_area` keeps
skin, brows, eyes, nose, mouth and lips (:data:`FACE_CLASSES`); glasses, hair, hats, ears,
neck, cloth and background (which covers hands and other occluders) are excluded.

Torch is imported only here, lazily: the torch-free runtime never imports this module unless a
parsing checkpoint is requested.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon_cli.errors import InputError

CLASSES = ("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
           "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat")
FACE_CLASSES = (1, 2, 3, 4, 5, 10, 11, 12, 13)
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)


def build_bisenet(n_classes: int = 19):
    """The BiSeNet of face-parsing.PyTorch as a ``torch.nn.Module`` (eval-mode inference only)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class ConvBNReLU(nn.Module):
        def __init__(self, cin, cout, ks=3, stride=1, padding=1):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, ks, stride, padding, bias=False)
            self.bn = nn.BatchNorm2d(cout)

        def forward(self, x):
            return F.relu(self.bn(self.conv(x)))

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride=1):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if cin != cout or stride != 1:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            r = F.relu(self.bn1(self.conv1(x)))
            r = self.bn2(self.conv2(r))
            sc = x if self.downsample is None else self.downsample(x)
            return F.relu(sc + r)

    def layer(cin, cout, stride):
        return nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1))

    class Resnet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            self.layer1, self.layer2 = layer(64, 64, 1), layer(64, 128, 2)
            self.layer3, self.layer4 = layer(128, 256, 2), layer(256, 512, 2)

        def forward(self, x):
            x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
            f8 = self.layer2(self.layer1(x))
            f16 = self.layer3(f8)
            return f8, f16, self.layer4(f16)

    class ARM(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.conv = ConvBNReLU(cin, cout)
            self.conv_atten = nn.Conv2d(cout, cout, 1, bias=False)
            self.bn_atten = nn.BatchNorm2d(cout)

        def forward(self, x):
            f = self.conv(x)
            return f * torch.sigmoid(self.bn_atten(self.conv_atten(F.adaptive_avg_pool2d(f, 1))))

    class ContextPath(nn.Module):
        def __init__(self):
            super().__init__()
            self.resnet = Resnet18()
            self.arm16, self.arm32 = ARM(256, 128), ARM(512, 128)
            self.conv_head32, self.conv_head16 = ConvBNReLU(128, 128), ConvBNReLU(128, 128)
            self.conv_avg = ConvBNReLU(512, 128, ks=1, padding=0)

        def forward(self, x):
            f8, f16, f32 = self.resnet(x)
            avg = F.interpolate(self.conv_avg(F.adaptive_avg_pool2d(f32, 1)), f32.shape[2:], mode="nearest")
            up32 = self.conv_head32(F.interpolate(self.arm32(f32) + avg, f16.shape[2:], mode="nearest"))
            up16 = self.conv_head16(F.interpolate(self.arm16(f16) + up32, f8.shape[2:], mode="nearest"))
            return f8, up16

    class FFM(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.convblk = ConvBNReLU(cin, cout, ks=1, padding=0)
            self.conv1 = nn.Conv2d(cout, cout // 4, 1, bias=False)
            self.conv2 = nn.Conv2d(cout // 4, cout, 1, bias=False)

        def forward(self, fsp, fcp):
            f = self.convblk(torch.cat([fsp, fcp], 1))
            a = torch.sigmoid(self.conv2(F.relu(self.conv1(F.adaptive_avg_pool2d(f, 1)))))
            return f * a + f

    class Output(nn.Module):
        def __init__(self, cin, cmid, n):
            super().__init__()
            self.conv = ConvBNReLU(cin, cmid)
            self.conv_out = nn.Conv2d(cmid, n, 1, bias=False)

        def forward(self, x):
            return self.conv_out(self.conv(x))

    class BiSeNet(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.cp = ContextPath()
            self.ffm = FFM(256, 256)
            self.conv_out = Output(256, 256, n)
            self.conv_out16 = Output(128, 64, n)  # auxiliary heads: in the checkpoint, unused here
            self.conv_out32 = Output(128, 64, n)

        def forward(self, x):
            f8, up16 = self.cp(x)
            out = self.conv_out(self.ffm(f8, up16))
            return F.interpolate(out, x.shape[2:], mode="bilinear", align_corners=True)

    return BiSeNet(n_classes)


class FaceParser:
    """BiSeNet face parsing on aligned crops. ``device``: torch device string (CPU by default)."""

    def __init__(self, checkpoint: str | Path, device: str = "cpu", input_size: int = 512):
        import torch

        path = Path(checkpoint)
        if not path.is_file():
            raise InputError(f"face-parsing checkpoint not found: {path}",
                             hint="pass the BiSeNet 79999_iter.pth of face-parsing.PyTorch, or omit --parsing")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise InputError(f"{path} is not a readable torch checkpoint: {e}") from None
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        self.net = build_bisenet(len(CLASSES))
        try:
            self.net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise InputError(f"{path} does not match the BiSeNet face-parsing layout: {str(e)[:300]}",
                             hint="use the 19-class CelebAMask-HQ checkpoint 79999_iter.pth") from None
        self.net.eval().to(device)
        self.device, self.input_size = device, input_size

    def parse(self, crop_rgb: np.ndarray) -> np.ndarray:
        """``(H, W, 3) uint8`` RGB → ``(H, W) uint8`` class indices (:data:`CLASSES`)."""
        import cv2
        import torch

        h, w = crop_rgb.shape[:2]
        x = cv2.resize(crop_rgb, (self.input_size, self.input_size), interpolation=cv2.INTER_LINEAR)
        x = (x.astype(np.float32) / 255.0 - _MEAN) / _STD
        t = torch.from_numpy(x.transpose(2, 0, 1)[None].copy()).to(self.device)
        with torch.no_grad():
            cls = self.net(t)[0].argmax(0).to(torch.uint8).cpu().numpy()
        return cv2.resize(cls, (w, h), interpolation=cv2.INTER_NEAREST)

    def face_area(self, crop_rgb: np.ndarray) -> np.ndarray:
        """``(H, W) bool``: pixels of visible face classes (:data:`FACE_CLASSES`)."""
        return np.isin(self.parse(crop_rgb), FACE_CLASSES)
