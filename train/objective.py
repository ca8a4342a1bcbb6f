"""Wiring of the training objective from the config: renderer (camera of the dataset) + losses
(weights, options, identity network with its face box from the dataset's alignment template).

* Camera: the dataset's ``dataset.json["camera"]`` (the crop camera ``recon prep`` aligned to,
  :func:`recon_cli.face.align.crop_camera`) unless ``camera.from_dataset`` is false or the header
  has none; then the ``camera.*`` config values (for a 224 crop). Scaled to ``data.size``.
* Identity face box: the least-squares scale + translation of the dataset's 5-point template
  (``dataset.json["template"]``, crop px) onto the face-recognition network's own template
  (:func:`train.identity.crop.fit_box`), so the network sees the face the way it was trained,
  whatever template the crops were aligned to. Without a template: the network's default box.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from recon_cli.render.camera import CameraConfig
from train.step import Objective


def crop_camera(cfg, header: dict[str, Any] | None) -> CameraConfig:
    """The camera to render the ``data.size`` crop with (see the module docstring)."""
    cam = (header or {}).get("camera") if cfg.camera.from_dataset else None
    if cam:
        base = CameraConfig(int(cam["size"]), float(cam["focal"]), float(cam["cx"]), float(cam["cy"]),
                            float(cam["distance"]))
    else:
        c = cfg.camera
        base = CameraConfig(224, c.focal, c.cx, c.cy, c.distance)
    return base.scaled(cfg.data.size)


def identity_box(header: dict[str, Any] | None, input_hw: tuple[int, int]) -> tuple[float, ...] | None:
    """Face box (fractions of the crop side) for a network input ``(H, W)``, or None (default)."""
    from train.identity.crop import ARCFACE_5PTS_112, SPHEREFACE_5PTS_112x96, fit_box

    tpl = (header or {}).get("template")
    size = (header or {}).get("size")
    if tpl is None or size is None:
        return None
    dst = {(112, 96): SPHEREFACE_5PTS_112x96, (112, 112): ARCFACE_5PTS_112}.get(tuple(input_hw))
    if dst is None:
        return None
    # header points are continuous crop px; fit_box takes pixel-index coordinates
    return fit_box(np.asarray(tpl, np.float64) - 0.5, int(size), dst, tuple(input_hw))


def build_objective(cfg, model, layout, device: torch.device, header: dict[str, Any] | None = None) -> Objective:
    """Renderer + :class:`train.losses.Losses` on ``device`` for ``cfg`` (a TrainConfig)."""
    from recon_cli.render.renderer import RenderConfig, Renderer
    from train.losses import Losses, build_identity_loss, settings_from_config

    renderer = Renderer(model, RenderConfig(camera=crop_camera(cfg, header), n_light=cfg.model.n_light))
    enabled, weights, options = settings_from_config(cfg.losses)
    identity = None
    if "per" in enabled:
        identity = build_identity_loss(cfg.losses.identity_weights or None, cfg.losses.identity_kind, device=device)
        if identity is not None:
            box = identity_box(header, identity.net.input_hw)
            if box is not None:
                identity.net = _rebox(identity.net, box).to(device)
    losses = Losses(layout, enabled=enabled, weights=weights, options=options, identity=identity).to(device)
    return Objective(renderer=renderer, losses=losses, size=cfg.data.size)


def _rebox(net, box):
    """The same frozen network with another face box (rebuilds the sampling grid)."""
    from train.identity.network import IdentityNet

    return IdentityNet(net.backbone, net.kind, box=box, supersample=net.supersample)
