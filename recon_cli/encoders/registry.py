"""Build encoders by name, load ImageNet backbone weights, save and load checkpoints.

Architectures (:data:`ARCHS`): ``resnet50`` (the paper's), ``resnet18``, ``mobilenet_v3_large``,
``mobilenet_v3_small`` (edge).

Checkpoint file (``torch.save`` of a dict, written atomically)::

    {"format_version": 1,
     "meta": {"arch", "layout" (CoeffLayout dict), "size", "model_name", "model_hash",
              "config" (dict), "format_version",
              "source_scale" (optional: crop px per source px of the training faces, median;
                              recon_cli.face.align.AlignConfig),
              "yaw_symmetry" (optional: the mean asymmetry by yaw to remove;
                              recon_cli.pipeline.symmetry)},
     "state_dict": encoder.state_dict(),
     "extra": {...}}          # anything else the caller keeps (step, metrics, optimiser…)

:func:`load_checkpoint` reads it with ``torch.load(weights_only=True)`` (no arbitrary code), so
``extra`` must hold only tensors and plain Python containers/numbers/strings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from recon_cli.atomic import atomic_path
from recon_cli.coeffs import CoeffLayout
from recon_cli.encoders.encoder import Encoder
from recon_cli.encoders.mobilenet import mobilenet_v3_large, mobilenet_v3_small
from recon_cli.encoders.resnet import resnet18, resnet50
from recon_cli.errors import InputError

FORMAT_VERSION = 1
ARCHS: dict[str, Callable[[], nn.Module]] = {
    "resnet50": resnet50,
    "resnet18": resnet18,
    "mobilenet_v3_large": mobilenet_v3_large,
    "mobilenet_v3_small": mobilenet_v3_small,
}
# classifier parameters of torchvision/timm checkpoints that the encoder does not have
_CLASSIFIER_PREFIXES = ("fc.", "classifier.")
META_KEYS = ("arch", "layout", "size", "model_name", "model_hash", "config", "format_version")


def build_encoder(arch: str, layout: CoeffLayout, size: int = 224, *, pretrained: str | Path | None = None,
                  group_scale: dict[str, float] | None = None) -> Encoder:
    """A new encoder (zero-initialised head) for ``layout``.

    Args:
        arch: one of :data:`ARCHS`.
        layout: coefficient layout; the head outputs ``layout.total`` values.
        size: crop side S the encoder is trained for (recorded; the network is size-agnostic).
        pretrained: optional torchvision-format ImageNet state dict for the backbone.
        group_scale: per-group output scale of the head (see :mod:`recon_cli.encoders.head`).
    """
    if arch not in ARCHS:
        raise InputError(f"unknown encoder architecture {arch!r}", hint=f"choose one of {', '.join(ARCHS)}")
    if int(size) < 32:
        raise InputError(f"encoder input size {size} is too small", hint="use an input size of at least 32 (224 by default)")
    encoder = Encoder(arch, ARCHS[arch](), layout, size, group_scale)
    if pretrained:
        load_pretrained(encoder, pretrained)
    return encoder


def load_pretrained(encoder: Encoder, path: str | Path) -> None:
    """Load torchvision/timm ImageNet weights into ``encoder.backbone`` (classifier dropped).

    Accepts a plain state dict or one under ``state_dict``/``model``; strips ``module.``.

    Raises:
        InputError: missing/unreadable file, or keys/shapes that do not match ``encoder.arch``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"pretrained weights not found: {path}",
                         hint=f"pass --pretrained with a torchvision-format {encoder.arch} state dict (.pth)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise InputError(f"cannot read pretrained weights {path}: {e}", hint="pass a state dict saved with torch.save") from e
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{path} is not a state dict of tensors", hint=f"pass torchvision {encoder.arch} weights")
    state = {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}
    state = {k: v for k, v in state.items() if not k.startswith(_CLASSIFIER_PREFIXES)}
    own = encoder.backbone.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise InputError(f"{path} does not match the {encoder.arch} backbone: " + "; ".join(parts),
                         hint=f"use torchvision's {encoder.arch} ImageNet weights, or choose the matching --arch")
    encoder.backbone.load_state_dict(state, strict=True)


def save_checkpoint(path: str | Path, encoder: Encoder, *, arch: str, layout: CoeffLayout, size: int,
                    model_name: str, model_hash: str, config: dict | None = None,
                    extra: dict[str, Any] | None = None, half: bool = False,
                    source_scale: float | None = None, yaw_symmetry: dict[str, Any] | None = None) -> Path:
    """Write the encoder and its metadata atomically to ``path`` (see module docstring).

    ``half=True`` stores floating-point tensors as float16 (half the size; shipped weights);
    :func:`load_checkpoint` casts them back to the encoder's float32 parameters. ``yaw_symmetry``:
    :meth:`recon_cli.pipeline.symmetry.YawSymmetry.to_meta` of these weights.
    """
    if layout.total != encoder.layout.total or arch != encoder.arch:
        raise ValueError(f"checkpoint meta (arch {arch}, {layout.total} coeffs) does not match the encoder "
                         f"(arch {encoder.arch}, {encoder.layout.total} coeffs)")
    meta = {"arch": arch, "layout": layout.to_dict(), "size": int(size), "model_name": model_name,
            "model_hash": model_hash, "config": config or {}, "format_version": FORMAT_VERSION}
    if source_scale is not None:
        meta["source_scale"] = round(float(source_scale), 4)
    if yaw_symmetry is not None:
        meta["yaw_symmetry"] = yaw_symmetry
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    payload = {"format_version": FORMAT_VERSION, "meta": meta, "state_dict": state, "extra": extra or {}}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_checkpoint(path: str | Path, *, weights_only: bool = True) -> dict[str, Any]:
    """The raw checkpoint dict (``meta``, ``state_dict``, ``extra``), validated.

    ``weights_only=False`` allows arbitrary pickled objects in ``extra``: only for files you wrote.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"encoder checkpoint not found: {path}", hint="pass a .pt file written by `recon train`")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as e:  # noqa: BLE001
        first = (str(e).strip().splitlines() or [""])[0].split(". ")[0]  # torch's messages run to paragraphs
        raise InputError(f"cannot read encoder checkpoint {path}: {type(e).__name__}: {first}",
                         hint="the file is truncated or not a recon checkpoint; pass a .pt file written by `recon train`") from e
    if not isinstance(obj, dict) or not isinstance(obj.get("meta"), dict) or not isinstance(obj.get("state_dict"), dict):
        raise InputError(f"{path} is not a recon encoder checkpoint (expected keys meta, state_dict)",
                         hint="pass a .pt file written by `recon train` (ImageNet backbones go to --pretrained)")
    meta = obj["meta"]
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise InputError(f"{path}: checkpoint metadata lacks {missing}", hint="re-save it with recon_cli.encoders.save_checkpoint")
    if int(meta["format_version"]) > FORMAT_VERSION:
        raise InputError(f"{path} has checkpoint format {meta['format_version']}, this recon reads up to {FORMAT_VERSION}",
                         hint="upgrade recon")
    return obj


def load_checkpoint(path: str | Path, *, weights_only: bool = True) -> tuple[Encoder, dict[str, Any]]:
    """Rebuild the encoder from a checkpoint → ``(encoder in eval mode, meta)``.

    Raises:
        InputError: missing/corrupt file, unknown architecture, or weights that do not match.
    """
    return encoder_from_checkpoint(read_checkpoint(path, weights_only=weights_only), path)


def encoder_from_checkpoint(obj: dict[str, Any], path: str | Path) -> tuple[Encoder, dict[str, Any]]:
    """The encoder of a checkpoint dict already read with :func:`read_checkpoint` (``path`` names it
    in errors) → ``(encoder in eval mode, meta)``; lets a caller that also needs ``extra`` read the
    file once."""
    meta = dict(obj["meta"])
    try:
        layout = CoeffLayout(**meta["layout"])
    except (TypeError, ValueError) as e:
        raise InputError(f"{path}: bad coefficient layout {meta['layout']!r}: {e}") from e
    encoder = build_encoder(meta["arch"], layout, int(meta["size"]))
    try:
        encoder.load_state_dict(obj["state_dict"], strict=True)
    except RuntimeError as e:
        raise InputError(f"{path}: weights do not match the {meta['arch']} encoder: {e}",
                         hint="the checkpoint is damaged or was written by an incompatible version") from e
    return encoder.eval(), meta
