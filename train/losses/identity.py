"""Identity (perceptual) loss: 1 − cosine similarity of face-recognition embeddings.

    L_per = mean_b (1 − ⟨f(I_b), f(I'_b)⟩ / (‖f(I_b)‖ ‖f(I'_b)‖))

``f`` is a frozen face-recognition network (:class:`train.identity.IdentityNet`: MobileFaceNet
or insightface iresnet) applied to the face box of the aligned crop; ``I`` the input crop,
``I'`` the render composited over it. Gradients reach ``I'`` (and through it the coefficients),
never the network's weights; the input's embedding is computed without a graph.

A missing network file disables the loss with a warning naming ``--identity-weights``
(:func:`build_identity_loss` returns ``None``); it never fails silently.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recon_cli.errors import InputError
from recon_cli.paths import data_dir

DEV_CHECKPOINT = Path("identity") / "mobilefacenet-arcface" / "068.ckpt"


def identity_loss(feat_in: Tensor, feat_render: Tensor) -> Tensor:
    """``feat_in, feat_render: (B, D)`` embeddings (any norm) → scalar mean of 1 − cos."""
    if feat_in.shape != feat_render.shape or feat_in.dim() != 2:
        raise ValueError(f"features must both be (B, D); got {tuple(feat_in.shape)} and {tuple(feat_render.shape)}")
    cos = (F.normalize(feat_in, dim=-1) * F.normalize(feat_render, dim=-1)).sum(-1)
    return (1.0 - cos).mean()


class IdentityLoss(nn.Module):
    """``forward(image, render)`` with ``(B, 3, S, S)`` RGB in [0, 1] → scalar 1 − cos.

    Args:
        net: an :class:`train.identity.IdentityNet` (frozen).
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, image: Tensor, render: Tensor) -> Tensor:
        with torch.no_grad():
            f_in = self.net(image)
        return identity_loss(f_in, self.net(render))


def default_identity_weights() -> Path | None:
    """The development-data MobileFaceNet checkpoint, where the data folder is present."""
    d = data_dir()
    return None if d is None else d / DEV_CHECKPOINT


def build_identity_loss(weights: str | Path | None, kind: str = "auto", *, box=None,
                        device: str | torch.device = "cpu") -> IdentityLoss | None:
    """Load the identity loss, or warn and return ``None`` when the default network file (the
    development data's) is missing; a named file that is missing is an error.

    Args:
        weights: checkpoint path; ``None``/``""`` = :func:`default_identity_weights`.
        kind: ``auto`` or a kind of :data:`train.identity.KINDS` (``mobilefacenet``, ``iresnet50``…).

    Raises:
        InputError: ``weights`` names a missing file, or a file that is not a matching
            face-recognition checkpoint.
    """
    from train.identity.network import load_identity_network

    if weights and not Path(weights).is_file():  # asked for by name: a typo must not silently drop a loss
        raise InputError(f"identity weights {weights} not found",
                         hint="pass an existing face-recognition checkpoint to --identity-weights "
                              "(losses.identity_weights), or leave it empty for the development-data MobileFaceNet")
    path = Path(weights) if weights else default_identity_weights()
    if path is None or not path.is_file():
        where = "no development data folder" if path is None else f"{path} does not exist"
        warnings.warn(f"identity loss disabled: face-recognition weights not found ({where}); "
                      "pass --identity-weights PATH (losses.identity_weights) to enable it",
                      RuntimeWarning, stacklevel=2)
        return None
    return IdentityLoss(load_identity_network(path, kind, box=box, device=device))
