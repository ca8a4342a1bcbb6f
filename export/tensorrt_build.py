"""ONNX encoder → TensorRT 10 engine (``recon export --trt``).

TensorRT 10 Python API as documented by NVIDIA:

* ``trt.Builder(logger)``, ``builder.create_network(flags)`` (explicit batch: the only mode in
  TensorRT 10, the ``EXPLICIT_BATCH`` flag is passed where the enum still has it),
  ``trt.OnnxParser(network, logger).parse(bytes)`` with its errors reported;
* ``builder.create_builder_config()`` with ``set_memory_pool_limit(MemoryPoolType.WORKSPACE, …)``,
  ``BuilderFlag.FP16`` / ``BuilderFlag.INT8``;
* an optimisation profile for the dynamic batch (min 1, opt, max) on the input tensor, also
  used as the calibration profile;
* int8: an ``IInt8EntropyCalibrator2`` over real face crops (:class:`EntropyCalibrator`) with a
  calibration cache file (``<engine>.calib``) so rebuilding skips calibration;
* ``builder.build_serialized_network(network, config)``; the engine is written atomically with
  a JSON sidecar ``<engine>.json`` holding the recon metadata (read by
  :class:`recon_cli.backends.tensorrt_backend.TensorRTBackend`).

``tensorrt`` and ``cuda-python`` are imported lazily; where they are missing the functions raise
an :class:`InputError` with the install instructions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from recon_cli.atomic import atomic_write_bytes, atomic_write_text
from recon_cli.backends.tensorrt_backend import _check, import_cudart, import_tensorrt, sidecar_path
from recon_cli.errors import InputError


def make_calibrator(trt, crops: np.ndarray, cache_path: Path, batch: int = 8):
    """An ``IInt8EntropyCalibrator2`` feeding ``crops (N, 3, S, S) float32`` [0, 1] ``batch`` at a
    time from one device buffer; reads/writes the calibration cache at ``cache_path``."""
    cudart = import_cudart()

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.crops = np.ascontiguousarray(crops, np.float32)
            self.batch, self.i = batch, 0
            self.nbytes = self.crops[:batch].nbytes
            self.device = _check(cudart.cudaMalloc(self.nbytes))

        def get_batch_size(self) -> int:
            return self.batch

        def get_batch(self, names):  # noqa: ARG002 - one input
            if self.i + self.batch > len(self.crops):
                return None
            x = np.ascontiguousarray(self.crops[self.i:self.i + self.batch])
            self.i += self.batch
            _check(cudart.cudaMemcpy(self.device, x.ctypes.data, x.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
            return [int(self.device)]

        def read_calibration_cache(self):
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache) -> None:
            atomic_write_bytes(cache_path, bytes(cache))

    return EntropyCalibrator()


def build_engine(onnx_path: str | Path, out: str | Path, *, meta: dict[str, Any], fp16: bool = False, int8: bool = False,
                 crops: np.ndarray | None = None, min_batch: int = 1, opt_batch: int = 1, max_batch: int = 16,
                 workspace_gb: float = 2.0) -> Path:
    """Build and save a serialized engine for the fp32 ONNX encoder ``onnx_path``.

    Args:
        meta: recon metadata for the sidecar (from the ONNX file); ``precision`` is set here.
        fp16/int8: builder precision flags (int8 needs ``crops`` for calibration; fp16 is also
            enabled with int8 so layers int8 cannot run fall back to fp16, not fp32).
        min/opt/max_batch: the dynamic-batch optimisation profile.
        workspace_gb: builder workspace memory pool limit.
    Returns ``out``; the sidecar is ``<out>.json``.
    """
    trt = import_tensorrt()
    onnx_path, out = Path(onnx_path), Path(out)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    network = builder.create_network(0 if flag is None else 1 << int(flag))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise InputError(f"TensorRT could not parse {onnx_path}: {errors}", hint="export the fp32 ONNX with `recon export` (opset 17)")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    size = int(meta["size"])
    inp = network.get_input(0)
    profile = builder.create_optimization_profile()
    profile.set_shape(inp.name, (min_batch, 3, size, size), (opt_batch, 3, size, size), (max_batch, 3, size, size))
    config.add_optimization_profile(profile)
    precision = "fp32"
    if fp16 or int8:
        config.set_flag(trt.BuilderFlag.FP16)
        precision = "fp16"
    if int8:
        if crops is None or len(crops) < 8:
            raise InputError("TensorRT int8 needs calibration crops (at least 8)", hint="pass --calib DIR with aligned face crops")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = make_calibrator(trt, crops, out.with_name(out.name + ".calib"), batch=min(8, max_batch))
        config.set_calibration_profile(profile)
        precision = "int8"
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise InputError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    atomic_write_bytes(out, bytes(serialized))
    side = {**meta, "precision": precision, "tensorrt": trt.__version__,
            "profile": {"min": min_batch, "opt": opt_batch, "max": max_batch}, "onnx": onnx_path.name}
    atomic_write_text(sidecar_path(out), json.dumps(side, indent=2, sort_keys=True, default=str) + "\n")
    return out


def tensorrt_available() -> tuple[bool, str]:
    """``(True, version)`` where TensorRT 10 imports, else ``(False, reason with the fix)``."""
    try:
        trt = import_tensorrt()
    except InputError as e:
        return False, str(e)
    return True, trt.__version__
