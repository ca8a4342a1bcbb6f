"""TensorRT 10 encoder backend (torch-free): runs a serialized engine built by
``recon export --trt``.

Uses the TensorRT 10 name-based I/O API (``engine.num_io_tensors`` / ``get_tensor_name`` /
``get_tensor_mode``, ``context.set_input_shape``, ``context.set_tensor_address``,
``context.execute_async_v3``) and NVIDIA's ``cuda-python`` runtime bindings (``cudart``) for
device buffers, host↔device copies and the stream, so no torch/pycuda is needed on the device.
Both ``tensorrt`` and ``cuda-python`` are imported lazily; where either is missing the
backend raises an :class:`InputError` saying how to install it.

Metadata (arch, layout, size, morphable model, precision) comes from the JSON sidecar
``<engine>.json`` written beside the engine by :mod:`export.tensorrt_build`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from recon_cli.backends.base import check_input, check_meta
from recon_cli.errors import InputError

TRT_INSTALL_HINT = ("install TensorRT 10 for your CUDA version: `pip install tensorrt cuda-python` "
                    "(NVIDIA's wheels; see https://docs.nvidia.com/deeplearning/tensorrt/latest/installing-tensorrt/installing.html) "
                    "on a machine with an NVIDIA GPU; or use the ONNX backend (`--backend onnx`)")


def import_tensorrt():
    """``import tensorrt`` or an :class:`InputError` naming the fix."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise InputError(f"TensorRT is not installed (import tensorrt failed: {e})", hint=TRT_INSTALL_HINT) from None
    if int(trt.__version__.split(".")[0]) < 10:
        raise InputError(f"TensorRT {trt.__version__} found, recon needs TensorRT 10 or newer", hint=TRT_INSTALL_HINT)
    return trt


def import_cudart():
    """NVIDIA cuda-python's runtime module (``cuda.bindings.runtime``, or ``cuda.cudart`` in
    releases before 12.6)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError as e:
            raise InputError(f"cuda-python is not installed ({e}); the TensorRT backend needs it for device memory",
                             hint="pip install cuda-python") from None
    return cudart


def _check(result):
    """cuda-python calls return ``(err, *values)``; raise on error, return the values."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA runtime error {err}")
    return rest[0] if len(rest) == 1 else rest


def sidecar_path(engine_path: str | Path) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


class TensorRTBackend:
    """Encoder as a TensorRT engine (explicit batch, dynamic batch profile).

    Args:
        path: ``.engine``/``.plan`` file from ``recon export --trt``; its metadata sidecar
            ``<path>.json`` must lie beside it.

    Call with ``x: (B, 3, S, S) float32`` RGB in [0, 1] (B within the engine's optimisation
    profile) → ``(B, total) float32``. Device buffers are allocated for the largest batch seen
    and reused.
    """

    def __init__(self, path: str | Path, *, threads: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"TensorRT engine not found: {self.path}", hint="build one with `recon export --trt`")
        side = sidecar_path(self.path)
        if not side.is_file():
            raise InputError(f"metadata sidecar {side} is missing beside the engine", hint="rebuild the engine with `recon export --trt`")
        self.meta: dict[str, Any] = check_meta(json.loads(side.read_text()), str(side))
        trt = self.trt = import_tensorrt()
        self.cudart = import_cudart()
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise InputError(f"{self.path} could not be deserialized by TensorRT {trt.__version__}",
                             hint="engines are tied to the TensorRT version and GPU: rebuild it with `recon export --trt` on this machine")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self.out_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        self.stream = _check(self.cudart.cudaStreamCreate())
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, capacity bytes)
        self.size = int(self.meta["size"])
        self.name = f"tensorrt-{self.meta.get('precision', 'fp32')}"
        self.device = "cuda"

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, cap = self._buffers.get(name, (0, 0))
        if cap < nbytes:
            if ptr:
                _check(self.cudart.cudaFree(ptr))
            ptr = int(_check(self.cudart.cudaMalloc(nbytes)))
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def __call__(self, x: np.ndarray) -> np.ndarray:
        cudart = self.cudart
        x = check_input(x, self.size, str(self.path))
        if not self.context.set_input_shape(self.input_name, x.shape):
            raise InputError(f"batch {x.shape[0]} is outside the engine's optimisation profile", hint="rebuild with a larger --trt-max-batch")
        out = np.empty(tuple(self.context.get_tensor_shape(self.output_name)), dtype=self.out_dtype)
        d_in, d_out = self._buffer(self.input_name, x.nbytes), self._buffer(self.output_name, out.nbytes)
        self.context.set_tensor_address(self.input_name, d_in)
        self.context.set_tensor_address(self.output_name, d_out)
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(cudart.cudaMemcpyAsync(d_in, x.ctypes.data, x.nbytes, h2d, self.stream))
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        _check(cudart.cudaMemcpyAsync(out.ctypes.data, d_out, out.nbytes, d2h, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        return out.astype(np.float32, copy=False)

    def close(self) -> None:
        for ptr, _ in self._buffers.values():
            self.cudart.cudaFree(ptr)
        self._buffers.clear()
        if getattr(self, "stream", None) is not None:
            self.cudart.cudaStreamDestroy(self.stream)
            self.stream = None

    def __del__(self):  # best effort
        try:
            self.close()
        except Exception:
            pass
