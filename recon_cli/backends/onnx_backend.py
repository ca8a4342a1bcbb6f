"""ONNX Runtime encoder backend (torch-free).

Runs an encoder exported by ``recon export`` (fp32, fp16 or int8 QDQ) in an
``onnxruntime.InferenceSession``. Providers: CUDA first where ``onnxruntime-gpu`` offers it,
then CPU. The recon metadata (arch, layout, size, morphable model name/hash, precision) is read
from the file's ``metadata_props`` through ``session.get_modelmeta()``, so the ``onnx`` package
is not needed at run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from recon_cli.backends.base import check_input, check_meta, decode_metadata
from recon_cli.errors import InputError

DEFAULT_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


def _import_ort():
    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover - onnxruntime is a dependency
        raise InputError(f"onnxruntime is not installed ({e})", hint="pip install onnxruntime (or onnxruntime-gpu)") from None
    return ort


class OnnxBackend:
    """Encoder in ONNX Runtime.

    Args:
        path: ``.onnx`` file written by ``recon export``.
        threads: intra-op thread count (``None``: ONNX Runtime's default, all cores).
        providers: execution providers in order of preference; unavailable ones are dropped
            (default: CUDA, then CPU).
        spin: let idle intra-op threads busy-wait for work (ONNX Runtime's default). Off by
            default: in the live pipeline the encoder shares the cores with decoding, landmarks
            and rendering, and spinning threads take ~1.5× more CPU per frame there.

    Call with ``x: (B, 3, S, S) float32`` RGB in [0, 1] → ``(B, total) float32`` coefficients.
    """

    def __init__(self, path: str | Path, *, threads: int | None = None, providers: Sequence[str] | None = None,
                 spin: bool = False):
        ort = _import_ort()
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"ONNX encoder not found: {self.path}", hint="export one with `recon export --onnx OUT.onnx`")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        if not spin:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        available = set(ort.get_available_providers())
        wanted = [p for p in (providers or DEFAULT_PROVIDERS) if p in available] or ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=wanted)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise InputError(f"{self.path} is not a loadable ONNX model: {str(e).splitlines()[0]}",
                             hint="re-export it with `recon export`") from None
        self.meta: dict[str, Any] = check_meta(decode_metadata(dict(self.session.get_modelmeta().custom_metadata_map)), str(self.path))
        self.size = int(self.meta["size"])
        self.threads = threads
        self.providers = self.session.get_providers()
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.name = f"onnx-{self.meta['precision']}"

    @property
    def device(self) -> str:
        return "cuda" if self.providers and self.providers[0] == "CUDAExecutionProvider" else "cpu"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = check_input(x, self.size, str(self.path))
        return self.session.run([self.output_name], {self.input_name: x})[0].astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return f"OnnxBackend({self.path}, precision={self.meta['precision']}, providers={self.providers})"
