"""Encoder → ONNX: loading the encoder to export, the export itself and the file metadata.

The ONNX graph takes the encoder's plain input ``image: (batch, 3, S, S) float32`` RGB in [0, 1]
(NCHW); the ImageNet mean/std normalisation is *inside* the graph (the encoder does it), so the
runtime feeds crops unchanged. The output is ``coeffs: (batch, total) float32`` in the
:class:`recon_cli.coeffs.CoeffLayout` order. The batch axis is dynamic.

Exporter choice (measured here with torch 2.13, onnx 1.22, onnxruntime 1.32, untrained
ResNet-50 / MobileNetV3-Large): both the TorchScript exporter (``dynamo=False``) and the
``torch.export``-based one (``dynamo=True``, needs onnxscript) match PyTorch to ~1e-5 in
coefficients and ~1e-3 px in landmarks, and both quantise; the TorchScript exporter is about
2–3× faster (ResNet-50: 4.8 s vs 8.6 s) and quieter, so it is the default
(``exporter="torchscript"``); ``exporter="dynamo"`` gives a slightly smaller graph (identities
folded) that ONNX Runtime runs the same. The TorchScript exporter is deprecated upstream: if a
future torch removes it, the default falls back to dynamo automatically.

Metadata (``metadata_props``, keys ``recon.*`` with JSON values, read back by
:class:`recon_cli.backends.onnx_backend.OnnxBackend`): ``arch``, ``layout``, ``size``,
``model_name``, ``model_hash``, ``config_hash``, ``precision``, ``recon_version``, ``input``
(the input/normalisation description), ``exporter``, ``opset``.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

from recon_cli import __version__
from recon_cli.backends.base import INPUT_DOC, INPUT_NAME, OUTPUT_NAME, encode_metadata
from recon_cli.errors import InputError
from recon_cli.paths import WEIGHTS_DIR

DEFAULT_WEIGHTS = WEIGHTS_DIR / "default.pt"
DEFAULT_OPSET = 17
EXPORTERS = ("torchscript", "dynamo")


def config_hash(meta: dict[str, Any]) -> str | None:
    """Training-config hash from checkpoint metadata: ``meta["config_hash"]`` if present,
    else SHA-256 (16 hex digits) of ``meta["config"]`` as sorted JSON, else None."""
    if meta.get("config_hash"):
        return str(meta["config_hash"])
    if meta.get("config") is not None:
        return hashlib.sha256(json.dumps(meta["config"], sort_keys=True, default=str).encode()).hexdigest()[:16]
    return None


def load_encoder(weights: str | Path | None = None, *, arch: str | None = None, untrained: bool = False,
                 model=None, size: int = 224, n_light: int = 9, seed: int = 0, bn_crops=None):
    """The encoder to export and its metadata.

    Args:
        weights: a checkpoint (``.pt``); ``None`` → the shipped ``recon_cli/weights/default.pt``.
        arch: with ``untrained``: the architecture to build (registry name).
        untrained: build ``arch`` with random weights for testing: BatchNorm statistics are
            estimated on real crops (:func:`calibrate_batchnorm`, ``bn_crops`` or 32 crops from
            :func:`export.calib.load_crops`) and the zero-initialised head is replaced by
            :func:`perturb_head` (seed ``seed``), so activations have trained-like ranges and
            outputs — and the parity and quantisation checks — are not trivial.
        model: the morphable model sizing the head of an untrained encoder (default: the shipped one).
    Returns:
        ``(encoder nn.Module in eval mode, meta dict)``.
    """
    from recon_cli.backends.torch_backend import normalise_meta

    if untrained:
        import torch

        if not arch:
            raise InputError("--untrained needs --arch", hint="e.g. `recon export --arch resnet50 --untrained --onnx out.onnx`")
        from recon_cli.coeffs import CoeffLayout
        from recon_cli.encoders.registry import build_encoder

        if model is None:
            from recon_cli.morphable import load_default_model

            model = load_default_model()
        layout = CoeffLayout.for_model(model, n_light)
        torch.manual_seed(seed)
        encoder = build_encoder(arch, layout, size)
        if bn_crops is None:
            from export.calib import load_crops

            bn_crops = load_crops(None, n=32, size=size)
        calibrate_batchnorm(encoder, bn_crops)
        perturb_head(encoder, layout=layout, seed=seed, size=size, probe=bn_crops)
        meta = {"arch": arch, "layout": layout.to_dict(), "size": size, "model_name": model.name,
                "model_hash": model.content_hash(), "untrained": True, "head_seed": seed}
        return encoder, normalise_meta(meta)
    path = Path(weights) if weights is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        if weights is None:
            raise InputError(f"the shipped default weights are not in this build: {DEFAULT_WEIGHTS} does not exist",
                             hint="train an encoder (`recon train`) and pass --weights runs/train/<name>/best.pt, "
                                  "or test the export with `--arch resnet50 --untrained`")
        raise InputError(f"encoder checkpoint not found: {path}", hint="pass a .pt checkpoint written by `recon train`")
    from recon_cli.encoders.registry import load_checkpoint

    encoder, meta = load_checkpoint(path)
    if arch and meta.get("arch") and arch != meta["arch"]:
        raise InputError(f"--arch {arch} does not match the checkpoint's architecture {meta['arch']} ({path})",
                         hint="leave out --arch when exporting a checkpoint")
    meta = normalise_meta(meta, getattr(encoder, "layout", None), getattr(encoder, "size", None))
    meta["weights"] = path.name
    return encoder.eval(), meta


def calibrate_batchnorm(encoder, crops, batch: int = 16) -> None:
    """Estimate BatchNorm running statistics of an untrained ``encoder`` on real crops
    ``(N, 3, S, S) float32`` [0, 1] (cumulative average, no weights change), then set eval mode.

    A freshly initialised network in eval mode uses mean 0 / variance 1 for every BatchNorm, so
    its activations shrink or grow layer by layer (MobileNetV3's pooled features end up ~1e-8):
    nothing like a trained network, and useless for judging fp16/int8 error. With statistics
    from real crops every layer sees normalised activations, as after training.
    """
    import torch

    bns = [m for m in encoder.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over all batches
    encoder.train()
    with torch.no_grad():
        x = torch.as_tensor(crops, dtype=torch.float32)
        for i in range(0, len(x), batch):
            if len(x[i:i + batch]) > 1:
                encoder(x[i:i + batch])
    for m in bns:
        m.momentum = 0.1
    encoder.eval()


def _last_linear(encoder):
    import torch

    last = None
    for m in encoder.modules():
        if isinstance(m, torch.nn.Linear):
            last = m
    if last is None:
        raise InputError("encoder has no linear output head to perturb")
    return last


# Realistic spreads of each coefficient group (coefficient units: σ of the basis, radians,
# SH units, metres) for a random head: a translation of 1 cm is ~10 px in a 224 crop.
HEAD_STD = {"id": 0.5, "exp": 0.3, "tex": 0.5, "angles": 0.15, "light": 0.2, "trans": 0.01}


def perturb_head(encoder, *, layout=None, seed: int = 0, size: int = 224, group_std: dict[str, float] | None = None,
                 probe=None) -> None:
    """Give an untrained encoder a random, non-zero output head (in place).

    The last ``nn.Linear`` gets Gaussian weights; each output row is then rescaled so that on
    ``probe`` (real crops ``(N, 3, S, S)`` [0, 1]; default: 4 random images) its RMS equals the
    realistic spread of its coefficient group (:data:`HEAD_STD`; all 0.1 without ``layout``),
    giving faces a few pixels to tens of pixels apart — magnitudes at which export parity in
    pixels is meaningful.
    """
    import torch

    head = _last_linear(encoder)
    layout = layout or getattr(encoder, "layout", None)
    target = torch.full((head.out_features,), 0.1)
    if layout is not None and layout.total == head.out_features:
        for name, sl in layout.slices.items():
            target[sl] = (group_std or HEAD_STD).get(name, 0.1)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=gen))
        if head.bias is not None:
            head.bias.zero_()
        probe = torch.rand(4, 3, size, size, generator=gen) if probe is None else torch.as_tensor(probe, dtype=torch.float32)
        rms = encoder.eval()(probe).pow(2).mean(0).sqrt().clamp_min(1e-12)
        head.weight.mul_((target / rms)[:, None])


def export_onnx(encoder, meta: dict[str, Any], out: str | Path, *, opset: int = DEFAULT_OPSET,
                exporter: str = "torchscript", precision: str = "fp32") -> Path:
    """Write ``encoder`` to ``out`` as ONNX (dynamic batch) with recon metadata; not atomic by
    itself: callers export to a temporary path and move it after verification
    (:func:`export.pipeline.export_encoder`)."""
    import onnx
    import torch

    if exporter not in EXPORTERS:
        raise InputError(f"unknown ONNX exporter {exporter!r}", hint=f"choose one of {EXPORTERS}")
    if opset < 17:
        raise InputError(f"opset {opset} is too old; recon exports opset 17 or newer")
    out = Path(out)
    size = int(meta["size"])
    example = torch.rand(2, 3, size, size)
    encoder = encoder.eval().cpu()
    used = exporter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            try:
                torch.onnx.export(encoder, (example,), str(out), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                  opset_version=opset, dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                                  do_constant_folding=True, dynamo=False)
            except (TypeError, RuntimeError, NotImplementedError) as e:  # exporter removed in a future torch
                warnings.warn(f"TorchScript ONNX exporter failed ({e}); using the dynamo exporter")
                used = "dynamo"
        if used == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=1024)
            prog = torch.onnx.export(encoder, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                     opset_version=opset, dynamic_shapes=({0: batch},), dynamo=True,
                                     external_data=False, verbose=False)
            prog.save(str(out))
    proto = onnx.load(str(out))
    full = {**{k: meta.get(k) for k in ("arch", "layout", "size", "model_name", "model_hash")},
            "precision": precision, "config_hash": config_hash(meta), "recon_version": __version__,
            "input": INPUT_DOC, "exporter": used, "opset": opset,
            **{k: meta[k] for k in ("untrained", "head_seed", "weights", "source_scale", "yaw_symmetry")
               if k in meta}}
    set_metadata(proto, full)
    proto.doc_string = f"recon encoder ({meta.get('arch')}). {INPUT_DOC}"
    proto.producer_name = "recon"
    proto.producer_version = __version__
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))
    return out


def set_metadata(proto, meta: dict[str, Any]) -> None:
    """Replace the ``recon.*`` entries of ``proto.metadata_props`` with ``meta`` (in place)."""
    keep = [(p.key, p.value) for p in proto.metadata_props if not p.key.startswith("recon.")]
    del proto.metadata_props[:]
    for k, v in keep + sorted(encode_metadata(meta).items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The recon metadata of an ONNX file (via onnx, without building a session)."""
    import onnx

    from recon_cli.backends.base import decode_metadata

    proto = onnx.load(str(path), load_external_data=False)
    return decode_metadata({p.key: p.value for p in proto.metadata_props})
