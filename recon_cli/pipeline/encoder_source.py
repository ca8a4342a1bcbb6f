"""Which encoder the runtime uses: the user's weights, the shipped default, or an untrained one.

:func:`resolve_encoder` returns an encoder backend plus a ``weights`` description that every
summary prints, so a user always sees what produced the faces:

1. ``--weights FILE`` → :func:`recon_cli.backends.load_backend` (``.pt`` torch, ``.onnx`` ONNX
   Runtime, ``.engine``/``.plan`` TensorRT; ``--backend`` overrides the extension).
2. No ``--weights`` → the shipped default in ``recon_cli/weights/``: ``default.onnx`` (backends
   auto/onnx), ``default.engine`` (tensorrt), ``default.pt`` (auto/torch).
   With only ``default.pt`` shipped and backend auto/onnx, the caller's ``untrained_onnx``
   exporter (given the checkpoint) writes it once to a cached ``.onnx`` and ONNX Runtime runs it.
3. No shipped default → an
   UNTRAINED encoder of ``arch`` built by :func:`recon_cli.encoders.registry.build_encoder`: its
   zero-initialised head outputs zero coefficients, i.e. the mean face, frontal, centred in the
   crop — the pipeline runs end to end, but the shapes are not reconstructions. With ``onnx``
   (and ``auto``, when the caller can export) the caller passes ``untrained_onnx``, a function
   that exports it once to a cached ``.onnx`` (the CLI layer does this through ``export``, which
   ``recon_cli`` itself must not import), so the edge path — ONNX Runtime — is what runs; with
   ``torch`` (or ``auto`` without an exporter) it runs eagerly in PyTorch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from recon_cli.errors import InputError
from recon_cli.paths import WEIGHTS_DIR

DEFAULT_ARCH = "mobilenet_v3_large"  # the edge backbone used when no weights exist
_DEFAULT_FILES = {"onnx": ("default.onnx",), "tensorrt": ("default.engine", "default.plan"),
                  "torch": ("default.pt",), "auto": ("default.onnx", "default.pt")}


def default_weights(backend: str = "auto") -> Path | None:
    """The shipped default weights for ``backend`` (None when this build has none)."""
    for name in _DEFAULT_FILES.get(backend, ()):
        p = WEIGHTS_DIR / name
        if p.is_file():
            return p
    return None


def untrained_torch(arch: str, model, size: int = 224, threads: int | None = None):
    """An untrained (zero-head) encoder in the torch backend."""
    try:
        from recon_cli.backends.torch_backend import TorchBackend
        from recon_cli.coeffs import CoeffLayout
        from recon_cli.encoders.registry import build_encoder
    except ImportError as e:
        raise InputError(f"no encoder weights given and torch is not available to build an untrained one ({e})",
                         hint="pass --weights ENCODER.onnx (exported with `recon export`)") from None
    layout = CoeffLayout.for_model(model)
    enc = build_encoder(arch, layout, size).eval()
    meta = {"arch": arch, "layout": layout.to_dict(), "size": size, "model_name": model.name,
            "model_hash": model.content_hash(), "untrained": True}
    return TorchBackend(enc, meta, threads=threads)


def resolve_encoder(weights: str | Path | None, backend: str, model, *, arch: str = DEFAULT_ARCH,
                    threads: int | None = None,
                    untrained_onnx: Callable[..., Path] | None = None) -> tuple[Any, dict[str, Any]]:
    """→ ``(backend object, info)``; ``info``: ``weights`` (path or ``"UNTRAINED <arch>"``),
    ``trained`` (bool), ``backend`` (name), ``arch``, ``precision``."""
    from recon_cli.backends import load_backend

    trained = True
    if weights is not None:
        enc = load_backend(weights, backend=backend, threads=threads)
        label = str(weights)
    else:
        found = default_weights(backend)
        shipped_pt = WEIGHTS_DIR / "default.pt"
        if (found is not None and found.suffix == ".pt" and backend == "auto" and untrained_onnx is not None) or (
                found is None and backend == "onnx" and untrained_onnx is not None and shipped_pt.is_file()):
            path = untrained_onnx(arch, model, shipped_pt)
            enc = load_backend(path, backend="onnx", threads=threads)
            label = f"{shipped_pt} (shipped default, as ONNX at {path})"
        elif found is not None:
            enc = load_backend(found, backend=backend, threads=threads)
            label = f"{found} (shipped default)"
        elif backend == "tensorrt":
            raise InputError("no TensorRT engine given and none is shipped",
                             hint="build one with `recon export --trt` and pass --weights ENGINE")
        elif backend == "onnx" or (backend == "auto" and untrained_onnx is not None):
            if untrained_onnx is None:
                raise InputError("no ONNX encoder given and none is shipped",
                                 hint="export one with `recon export --onnx OUT.onnx` and pass --weights OUT.onnx")
            path = untrained_onnx(arch, model)
            enc = load_backend(path, backend="onnx", threads=threads)
            label = f"UNTRAINED {arch} (zero head: mean face; no trained weights in this build; ONNX at {path})"
            trained = False
        else:
            enc = untrained_torch(arch, model, threads=threads)
            label = f"UNTRAINED {arch} (zero head: mean face; no trained weights in this build)"
            trained = False
    meta = getattr(enc, "meta", {}) or {}
    if meta.get("untrained"):
        trained = False
    info = {"weights": label, "trained": trained, "backend": getattr(enc, "name", backend),
            "arch": meta.get("arch"), "precision": meta.get("precision"), "threads": threads}
    return enc, info
