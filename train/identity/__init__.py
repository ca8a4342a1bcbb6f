"""Frozen face-recognition networks for the identity loss (training only; never shipped).

* :class:`MobileFaceNet` — ArcFace MobileFaceNet, 112 × 96 input, 128-d (the development-data
  checkpoint ``identity/mobilefacenet-arcface/068.ckpt`` loads strictly);
* :class:`IResNet` — insightface ``iresnet`` r18/r34/r50/r100, 112 × 112 input, 512-d
  (arcface_torch ``backbone.pth``);
* :class:`IdentityNet` — crop box + normalisation + frozen backbone + L2 normalisation;
* :func:`load_identity_network` — checkpoint → :class:`IdentityNet`.
"""

from train.identity.crop import default_box, fit_box
from train.identity.iresnet import IResNet, iresnet
from train.identity.mobilefacenet import MobileFaceNet
from train.identity.network import KINDS, IdentityNet, build_backbone, detect_kind, load_identity_network

__all__ = ["KINDS", "IdentityNet", "IResNet", "MobileFaceNet", "build_backbone", "default_box", "detect_kind",
           "fit_box", "iresnet", "load_identity_network"]
