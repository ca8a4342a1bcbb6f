"""Encoder runtime backends: PyTorch checkpoints, ONNX Runtime, TensorRT engines.

:func:`load_backend` picks one from the weights file (``.pt``/``.pth`` → torch, ``.onnx`` →
ONNX Runtime, ``.engine``/``.plan`` → TensorRT). Importing this package does not import torch;
only the torch backend does, when it is built.
"""

from __future__ import annotations

from pathlib import Path

from recon_cli.backends.base import EncoderBackend, check_model_match, layout_from_meta
from recon_cli.errors import InputError

BACKENDS = ("auto", "torch", "onnx", "tensorrt")
_BY_SUFFIX = {".pt": "torch", ".pth": "torch", ".ckpt": "torch", ".onnx": "onnx", ".engine": "tensorrt", ".plan": "tensorrt", ".trt": "tensorrt"}


def backend_for(path: str | Path) -> str:
    """Backend name for a weights file, by extension."""
    kind = _BY_SUFFIX.get(Path(path).suffix.lower())
    if kind is None:
        raise InputError(f"cannot tell the encoder format of {path} from its extension",
                         hint="use .pt/.pth (PyTorch checkpoint), .onnx (ONNX) or .engine/.plan (TensorRT), or pass --backend")
    return kind


def load_backend(weights_path: str | Path, backend: str = "auto", threads: int | None = None, device: str | None = None) -> EncoderBackend:
    """Open an encoder for inference.

    Args:
        weights_path: ``.pt``/``.pth`` checkpoint, ``.onnx`` model or ``.engine``/``.plan``.
        backend: ``"auto"`` (by extension) or one of ``"torch"``, ``"onnx"``, ``"tensorrt"``.
        threads: CPU threads (torch ``set_num_threads`` / ONNX Runtime intra-op threads).
        device: torch device for the torch backend (default: CUDA where available).
    Returns:
        an :class:`EncoderBackend` (``__call__((B,3,S,S) float32 [0,1]) → (B, total) float32``).
    """
    if backend not in BACKENDS:
        raise InputError(f"unknown encoder backend {backend!r}", hint=f"choose one of {', '.join(BACKENDS)}")
    path = Path(weights_path)
    if not path.is_file():
        raise InputError(f"encoder weights not found: {path}",
                         hint="pass a .pt checkpoint from `recon train`, or an .onnx/.engine from `recon export`")
    kind = backend_for(path) if backend == "auto" else backend
    if kind == "torch":
        from recon_cli.backends.torch_backend import TorchBackend

        return TorchBackend.from_checkpoint(path, device=device, threads=threads)
    if kind == "onnx":
        from recon_cli.backends.onnx_backend import OnnxBackend

        return OnnxBackend(path, threads=threads)
    from recon_cli.backends.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(path, threads=threads)


__all__ = ["BACKENDS", "EncoderBackend", "backend_for", "check_model_match", "layout_from_meta", "load_backend"]
