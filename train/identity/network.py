"""Frozen face-recognition networks for the identity (perceptual) loss.

:class:`IdentityNet` takes the aligned crop ``(B, 3, S, S)`` RGB in [0, 1] and returns unit
embeddings: it cuts the network's face box (:mod:`train.identity.crop`) with a differentiable
bilinear resample (2× supersampled, then 2 × 2 averaged, so the ~1.7× reduction does not alias),
normalises per network, runs the backbone in eval mode with frozen weights, and L2-normalises.
Gradients flow to the input image, never into the network's weights.

Per network (input H × W, normalisation, embedding):

* ``mobilefacenet``: 112 × 96, ``(255·x − 127.5) / 128``, 128-d (Xiaoccer/MobileFaceNet_Pytorch).
* ``iresnet50`` / ``iresnet100`` (also ``r50``/``r100``, ``iresnet18``/``iresnet34``): 112 × 112,
  ``(x − 0.5) / 0.5``, 512-d (insightface arcface_torch ``backbone.pth``).

:func:`load_identity_network` reads a checkpoint (a plain state dict, or a dict holding one under
``net_state_dict`` / ``state_dict`` / ``model``; a ``module.`` prefix from DataParallel is
stripped) and loads it strictly.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recon_cli.errors import InputError
from train.identity.crop import default_box
from train.identity.iresnet import LAYERS, IResNet
from train.identity.mobilefacenet import MobileFaceNet

KINDS = ("mobilefacenet", "iresnet18", "iresnet34", "iresnet50", "iresnet100")
_ALIASES = {"r18": "iresnet18", "r34": "iresnet34", "r50": "iresnet50", "r100": "iresnet100"}
# (mean, std) applied to x in [0, 1]: (x - mean) / std
_NORM = {"mobilefacenet": (127.5 / 255.0, 128.0 / 255.0), "iresnet": (0.5, 0.5)}


def canonical_kind(kind: str) -> str:
    k = _ALIASES.get(kind, kind)
    if k not in KINDS:
        raise InputError(f"unknown identity network {kind!r}", hint=f"choose one of {', '.join(KINDS)}")
    return k


def build_backbone(kind: str) -> nn.Module:
    """An uninitialised backbone of ``kind`` (see :data:`KINDS`)."""
    kind = canonical_kind(kind)
    return MobileFaceNet() if kind == "mobilefacenet" else IResNet(LAYERS["r" + kind[len("iresnet"):]])


class IdentityNet(nn.Module):
    """Aligned crop → unit face-recognition embedding (frozen network, grads to the input).

    Args:
        backbone: a :class:`MobileFaceNet` or :class:`IResNet` with loaded weights.
        kind: its kind (selects the normalisation).
        box: ``(x0, y0, x1, y1)`` face box as fractions of the crop side (continuous
            coordinates); ``None`` = :func:`train.identity.crop.default_box` for the network input.
        supersample: resample at this factor and average-pool back (anti-aliasing); 1 = plain
            bilinear.

    ``forward(x)``: ``x (B, 3, S, S) float`` RGB in [0, 1] → ``(B, D) float`` unit vectors.
    """

    def __init__(self, backbone: nn.Module, kind: str, box: tuple[float, float, float, float] | None = None,
                 supersample: int = 2):
        super().__init__()
        self.kind = canonical_kind(kind)
        self.backbone = backbone.eval()
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.input_hw = tuple(backbone.input_hw)
        self.embed_dim = int(backbone.embed_dim)
        self.box = tuple(float(v) for v in (box if box is not None else default_box(self.input_hw)))
        self.supersample = int(supersample)
        mean, std = _NORM["mobilefacenet" if self.kind == "mobilefacenet" else "iresnet"]
        self.mean, self.std = mean, std
        h, w = self.input_hw[0] * self.supersample, self.input_hw[1] * self.supersample
        x0, y0, x1, y1 = self.box
        # sample positions at output pixel centres, grid_sample normalised coords (align_corners=False)
        gx = 2.0 * (x0 + (torch.arange(w, dtype=torch.float64) + 0.5) / w * (x1 - x0)) - 1.0
        gy = 2.0 * (y0 + (torch.arange(h, dtype=torch.float64) + 0.5) / h * (y1 - y0)) - 1.0
        grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)  # (h, w, 2) as (x, y)
        self.register_buffer("grid", grid[None].float(), persistent=False)

    def train(self, mode: bool = True) -> "IdentityNet":
        super().train(mode)
        self.backbone.eval()  # always frozen: BN statistics never update
        return self

    def crop(self, x: Tensor) -> Tensor:
        """``(B, 3, S, S)`` in [0, 1] → ``(B, 3, H, W)`` face box at the network's input size."""
        grid = self.grid.to(dtype=x.dtype).expand(x.shape[0], -1, -1, -1)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if self.supersample > 1:
            out = F.avg_pool2d(out, self.supersample)
        return out

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"identity network expects (B, 3, S, S) RGB in [0, 1], got {tuple(x.shape)}")
        z = (self.crop(x) - self.mean) / self.std
        z = z.to(next(self.backbone.parameters()).dtype)
        return F.normalize(self.backbone(z), dim=-1)


def _extract_state_dict(obj, path: Path) -> dict[str, Tensor]:
    if isinstance(obj, dict):
        for key in ("net_state_dict", "state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise InputError(f"{path} is not a face-recognition state dict",
                         hint="pass a MobileFaceNet .ckpt ({'net_state_dict': ...}) or an arcface_torch backbone.pth")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def detect_kind(state: dict[str, Tensor]) -> str:
    """Guess the network from state-dict keys (``linear7`` → MobileFaceNet; iresnet depth from
    the number of ``layer3`` blocks)."""
    if "linear7.conv.weight" in state:
        return "mobilefacenet"
    if "layer1.0.bn1.weight" in state and "fc.weight" in state:
        n3 = len({k.split(".")[1] for k in state if k.startswith("layer3.")})
        for name, layers in LAYERS.items():
            if layers[2] == n3:
                return "iresnet" + name[1:]
    raise InputError("cannot tell which face-recognition network this state dict belongs to",
                     hint=f"supported: {', '.join(KINDS)}")


def load_identity_network(path: str | Path, kind: str = "auto", *, box=None, supersample: int = 2,
                          device: str | torch.device = "cpu") -> IdentityNet:
    """Load a face-recognition checkpoint strictly into the matching architecture.

    Args:
        path: ``.ckpt`` / ``.pth`` file.
        kind: one of :data:`KINDS` (or ``r50``/``r100``), or ``"auto"`` to detect from the keys.

    Raises:
        InputError: the file is missing, unreadable, or its keys/shapes do not match ``kind``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"face-recognition weights not found: {path}",
                         hint="pass --identity-weights PATH (MobileFaceNet 068.ckpt or arcface_torch backbone.pth)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 — any unpickling/zip error is a bad file for the user
        raise InputError(f"cannot read face-recognition weights {path}: {e}",
                         hint="pass a PyTorch checkpoint saved with torch.save") from e
    state = _extract_state_dict(obj, path)
    kind = detect_kind(state) if kind == "auto" else canonical_kind(kind)
    net = build_backbone(kind)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise InputError(f"{path} does not match the {kind} architecture:\n{e}",
                         hint="check --identity-kind (mobilefacenet, iresnet50, iresnet100) or use kind auto") from e
    return IdentityNet(net, kind, box=box, supersample=supersample).to(device)
