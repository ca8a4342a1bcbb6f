"""One training forward: encoder → coefficients → render → composite → losses.

Shared by the trainer, validation and ``recon bench train``. Precision: only the encoder runs
under ``torch.autocast`` (bf16/fp16 on CUDA); its coefficients are cast to float32 and the
rasteriser, shading and every loss run in float32 (the z-buffer, barycentrics and the DFT are
not safe in half precision).

Units: the landmark losses' wing parameters (w = 10, ε = 2) are pixels of a 224 crop, so
landmarks are compared in 224-crop pixels whatever the training size ``S`` (both sets are
scaled by ``224 / S`` before the loss).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from train.pts21 import mask_unused, project21

REF_SIZE = 224


@dataclass
class Objective:
    """Renderer + losses for one morphable model at one image size.

    ``renderer(coeffs) -> RenderOutput`` (image ``(B,3,S,S)``, mask ``(B,1,S,S)``, landmarks
    ``(B,68,2)`` crop px); ``losses(batch, render_out, coeffs) -> dict`` with ``total``.
    When the batch carries ``pts21`` the output also gets ``pts21 (B,21,2)``, the AFLW points
    predicted from the landmarks (:mod:`train.pts21`).
    """

    renderer: Any
    losses: Any
    size: int

    def __call__(self, coeffs: torch.Tensor, batch: dict[str, Any]) -> tuple[dict[str, torch.Tensor], Any]:
        out = self.renderer(coeffs.float())
        if batch.get("pts21") is not None:
            # AFLW manual labels: predicted points from the 68 landmark vertices; the labels the
            # model cannot express (ears) become invisible (train.pts21)
            out.pts21 = project21(out.landmarks)
            batch = {**batch, "pts21": mask_unused(batch["pts21"])}
        return self.losses(batch, out, coeffs.float(), self.size), out


def encode(encoder: torch.nn.Module, images: torch.Tensor, amp_dtype: torch.dtype | None) -> torch.Tensor:
    """``images (B,3,S,S)`` in [0,1] → ``coeffs (B, total) float32`` (autocast when ``amp_dtype``)."""
    ctx = torch.autocast(images.device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()
    with ctx:
        coeffs = encoder(images)
    return coeffs.float()


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    nb = device.type == "cuda"
    return {k: v.to(device, non_blocking=nb) if torch.is_tensor(v) else v for k, v in batch.items()}


def landmark_error(pred: torch.Tensor, target: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample landmark error of ``pred``/``target (B,68,2)`` crop px at ``size``.

    Returns ``(mean px distance at 224, NME)``, both ``(B,)``: the NME divides the mean distance
    by ``sqrt(w·h)`` of the target landmarks' bounding box (the AFLW2000-3D convention of 3DDFA).
    """
    d = (pred - target).norm(dim=-1).mean(-1)
    wh = target.amax(1) - target.amin(1)
    norm = (wh[:, 0] * wh[:, 1]).clamp_min(1e-6).sqrt()
    return d * (REF_SIZE / size), d / norm


def pts21_error(pred21: torch.Tensor, target21: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean distance (px at 224) over the visible usable AFLW points, per sample ``(B,)``, and a
    ``(B,)`` bool saying which samples have any such point. ``target21`` NaN = invisible."""
    target21 = mask_unused(target21)
    vis = ~torch.isnan(target21).any(-1)  # (B, 21)
    d = torch.where(vis, (pred21 - torch.nan_to_num(target21)).norm(dim=-1), torch.zeros_like(vis, dtype=pred21.dtype))
    n = vis.sum(1)
    return d.sum(1) / n.clamp_min(1) * (REF_SIZE / size), n > 0
