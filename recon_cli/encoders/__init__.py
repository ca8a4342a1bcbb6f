"""Encoders: image crop → morphable-model coefficients (torch).

Contract (shared by training, export and the runtime backends):

* input ``x: (B, 3, S, S) float32``, RGB, values in [0, 1], S = 224 by default; the encoder
  normalises internally, so an exported ONNX graph takes the same plain input;
* output ``(B, layout.total) float32`` coefficients in the :class:`recon_cli.coeffs.CoeffLayout`
  order; an untrained encoder outputs the mean face, frontal and centred (zero coefficients).

Modules: :mod:`.resnet` (ResNet-18/50), :mod:`.mobilenet` (MobileNetV3-Large/Small),
:mod:`.head` (zero-initialised coefficient head), :mod:`.encoder` (normalise + backbone + head),
:mod:`.registry` (``build_encoder``, ``save_checkpoint``, ``load_checkpoint``, ``load_pretrained``).
Its modules import torch; this ``__init__`` does not (names are resolved lazily), so importing
the package costs nothing on the torch-free runtime.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Encoder": "recon_cli.encoders.encoder",
    "ARCHS": "recon_cli.encoders.registry",
    "build_encoder": "recon_cli.encoders.registry",
    "load_checkpoint": "recon_cli.encoders.registry",
    "load_pretrained": "recon_cli.encoders.registry",
    "read_checkpoint": "recon_cli.encoders.registry",
    "save_checkpoint": "recon_cli.encoders.registry",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
