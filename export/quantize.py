"""Reduced-precision ONNX encoders: int8 static QDQ quantisation (ONNX Runtime) and fp16.

int8 (:func:`quantize_int8`):

1. ``onnxruntime.quantization.shape_inference.quant_pre_process`` (symbolic shape inference,
   graph optimisation: BatchNorm folding etc.) on the fp32 export;
2. ``quantize_static`` in QDQ format, per-channel int8 weights (symmetric), uint8 activations
   (the U8S8 pair ONNX Runtime's x86/ARM int8 kernels are fastest with; ``reduce_range`` only
   for AVX2/AVX-512 CPUs without VNNI), calibration by MinMax (default), Entropy (KL, 2048-bin
   histograms, see :func:`_entropy_ranges`) or Percentile (99.999 %) over real face crops fed
   by :class:`CropReader`; the regression head stays float (:func:`head_nodes`).

fp16 (:func:`convert_fp16`): ONNX Runtime's own converter
(``onnxruntime.transformers.float16.convert_float_to_float16``, the same code as
onnxconverter-common's, shipped with onnxruntime so no extra dependency) with float32 I/O kept
(``keep_io_types``), so callers still feed float32 crops. fp16 mainly pays off on GPUs
(CUDA/TensorRT providers); on CPUs ONNX Runtime runs many fp16 ops through casts.

The recon metadata of the fp32 file is copied with ``precision`` changed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from recon_cli.errors import InputError

CALIB_METHODS = ("minmax", "entropy", "percentile")


class CropReader:
    """``onnxruntime.quantization.CalibrationDataReader`` over crops ``(N, 3, S, S) float32``
    in [0, 1], ``batch`` at a time (the graph's batch axis is dynamic)."""

    def __init__(self, crops: np.ndarray, input_name: str = "image", batch: int = 8):
        self.crops, self.input_name, self.batch = np.ascontiguousarray(crops, np.float32), input_name, batch
        self._i = 0

    def get_next(self):
        if self._i >= len(self.crops):
            return None
        x = self.crops[self._i:self._i + self.batch]
        self._i += self.batch
        return {self.input_name: x}

    def rewind(self) -> None:
        self._i = 0


def _reader_class():
    from onnxruntime.quantization import CalibrationDataReader

    # Register CropReader as the documented base class's subclass without importing
    # onnxruntime.quantization (and onnx) at module import.
    return type("OrtCropReader", (CropReader, CalibrationDataReader), {})


def _copy_metadata(src: Path, dst: Path, precision: str, extra: dict | None = None) -> None:
    import onnx

    from export.onnx_export import read_metadata, set_metadata

    meta = read_metadata(src)
    meta.update(precision=precision, **(extra or {}))
    proto = onnx.load(str(dst))
    set_metadata(proto, meta)
    onnx.save(proto, str(dst))


def quantize_int8(fp32_path: str | Path, out_path: str | Path, crops: np.ndarray, *, method: str = "minmax",
                  per_channel: bool = True, reduce_range: bool | None = None, batch: int = 8,
                  keep_head_fp32: bool = True, exclude: list[str] | None = None) -> Path:
    """Static int8 QDQ quantisation of ``fp32_path`` into ``out_path`` (not atomic by itself).

    ``crops``: real face crops ``(N, 3, S, S) float32`` [0, 1] for calibration (32–128 is plenty).
    ``exclude``: substrings of node names to keep in float (e.g. ``"/backbone/conv1"``).
    ``reduce_range``: 7-bit weights; None = automatic, on where this CPU's int8 kernels would
    saturate (x86 without VNNI, :func:`recon_cli.cpu.int8_needs_reduce_range`; measured on an
    AVX2-only EPYC: full-range weights moved an untrained MobileNet's landmarks by 279 px).
    ``keep_head_fp32``: leave the regression head (see :func:`head_nodes`) in float: one uint8
    scale shared by all coefficients (identity ±3 σ next to translations in metres, where 1 mm is
    a pixel) would cost several pixels; the head is <1 % of the compute.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIB_METHODS:
        raise InputError(f"unknown calibration method {method!r}", hint=f"choose one of {', '.join(CALIB_METHODS)}")
    if len(crops) == 0:
        raise InputError("int8 calibration needs at least one crop", hint="pass --calib DIR with face crops")
    cal = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}[method]
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    if reduce_range is None:
        from recon_cli.cpu import int8_needs_reduce_range

        reduce_range = int8_needs_reduce_range()
    with tempfile.TemporaryDirectory(prefix="recon-quant-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=False)
        extra = {"WeightSymmetric": True, "ActivationSymmetric": False}
        if method == "percentile":
            extra["CalibPercentile"] = 99.999
        names = [n.name for n in _graph(pre).node]
        exclude = (head_nodes(pre) if keep_head_fp32 else []) + [n for n in names if any(e in n for e in (exclude or []))]
        reader = _reader_class()(crops, batch=batch)
        cache = None
        if method == "entropy":  # see _entropy_ranges: quantize_static's own entropy setting is MinMax in disguise
            cache = Path(tmp) / "ranges.json"
            _entropy_ranges(pre, reader, cache, Path(tmp))
            reader = None
        quantize_static(str(pre), str(out_path), reader, quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, reduce_range=reduce_range, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=cal, extra_options=extra, nodes_to_exclude=exclude,
                        calibration_cache_path=cache)
    _copy_metadata(fp32_path, out_path, "int8", {"calibration": {"method": method, "crops": int(len(crops)),
                                                                 "per_channel": per_channel, "reduce_range": reduce_range,
                                                                 "fp32_nodes": exclude}})
    return out_path


def _entropy_ranges(model: Path, reader, cache: Path, tmp: Path, num_bins: int = 2048, num_quantized_bins: int = 128) -> None:
    """KL-divergence (entropy) activation ranges with TensorRT's histogram settings (2048
    bins, 128 quantised bins), saved as an ONNX Runtime calibration cache for quantize_static.

    ``quantize_static`` builds its entropy calibrator with ``num_bins = num_quantized_bins = 128``
    and does not forward options to change them (onnxruntime 1.32); with equal counts the KL
    search has one candidate — the full range — so it returns the MinMax ranges. Running the
    calibrator here with 2048 bins gives the real entropy thresholds.
    """
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator, save_tensors_data

    cal = create_calibrator(model, [], augmented_model_path=str(tmp / "augmented.onnx"), calibrate_method=CalibrationMethod.Entropy,
                            extra_options={"num_bins": num_bins, "num_quantized_bins": num_quantized_bins, "symmetric": False})
    cal.collect_data(reader)
    save_tensors_data(cal.compute_data(), cache)


def _graph(path):
    import onnx

    return onnx.load(str(path), load_external_data=False).graph


def head_nodes(path: str | Path) -> list[str]:
    """Names of the nodes that form the regression head: the node producing the graph output
    and, walking back, the non-convolution nodes feeding it (Flatten, Reshape, global pooling,
    the Gemm/MatMul+Add of the linear layer) up to the first Conv/Relu-like feature node."""
    graph = _graph(path)
    producer = {o: n for n in graph.node for o in n.output}
    stop = {"Conv", "Relu", "Clip", "HardSwish", "Sigmoid", "Mul", "BatchNormalization", "Add"}
    out, frontier = [], [graph.output[0].name]
    while frontier:
        node = producer.get(frontier.pop())
        if node is None or node.name in out:
            continue
        first = not out
        if not first and node.op_type in stop:
            continue
        out.append(node.name)
        frontier += [i for i in node.input if i in producer]
    return out


def convert_fp16(fp32_path: str | Path, out_path: str | Path) -> Path:
    """fp32 ONNX → fp16 weights and compute, float32 input/output (not atomic by itself)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True)
    onnx.save(proto, str(out_path))
    _copy_metadata(Path(fp32_path), Path(out_path), "fp16")
    return Path(out_path)
