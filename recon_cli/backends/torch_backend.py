"""PyTorch encoder backend: a training checkpoint (``.pt``/``.pth``) run eagerly.

torch is imported lazily (only when this backend is built), so importing
:mod:`recon_cli.backends` stays torch-free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from recon_cli.backends.base import check_input, check_meta
from recon_cli.errors import InputError


def normalise_meta(meta: dict[str, Any], layout=None, size: int | None = None) -> dict[str, Any]:
    """Checkpoint metadata → backend metadata (:data:`recon_cli.backends.base.META_KEYS`)."""
    meta = dict(meta or {})
    if layout is not None and "layout" not in meta:
        meta["layout"] = layout.to_dict() if hasattr(layout, "to_dict") else dict(layout)
    elif hasattr(meta.get("layout"), "to_dict"):
        meta["layout"] = meta["layout"].to_dict()
    if size is not None:
        meta.setdefault("size", int(size))
    meta.setdefault("precision", "fp32")
    return meta


class TorchBackend:
    """Encoder ``nn.Module`` in eval mode behind the NumPy backend interface.

    Args:
        encoder: the module (input ``(B, 3, S, S)`` RGB [0, 1], output ``(B, total)``).
        meta: metadata (arch, layout, size, model_name, model_hash, ...).
        device: torch device string (``"cpu"``, ``"cuda"``).
        threads: ``torch.set_num_threads`` value (``None``: leave as is).
    """

    def __init__(self, encoder, meta: dict[str, Any], *, device: str = "cpu", threads: int | None = None):
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self.torch = torch
        self.device = device
        self.encoder = encoder.to(device).eval()
        self.meta = check_meta(normalise_meta(meta, getattr(encoder, "layout", None), getattr(encoder, "size", None)), "torch encoder")
        self.size = int(self.meta["size"])
        self.threads = threads
        self.name = "torch"

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, device: str | None = None, threads: int | None = None) -> "TorchBackend":
        """Load a checkpoint written by :func:`recon_cli.encoders.registry.save_checkpoint`."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"encoder checkpoint not found: {path}", hint="pass a .pt file written by `recon train`")
        import torch

        from recon_cli.encoders.registry import load_checkpoint

        encoder, meta = load_checkpoint(path)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        backend = cls(encoder, meta, device=device, threads=threads)
        backend.path = path  # where the weights came from (error messages), as the other backends have it
        return backend

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = check_input(x, self.size, "torch encoder")
        torch = self.torch
        with torch.inference_mode():
            y = self.encoder(torch.from_numpy(x).to(self.device))
        return y.float().cpu().numpy()

    def __repr__(self) -> str:
        return f"TorchBackend({self.meta.get('arch')}, device={self.device})"
