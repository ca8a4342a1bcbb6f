"""int8 static QDQ quantisation and fp16 conversion: they run on real crops, keep the recon
metadata, keep the regression head in float, and report landmark displacement vs fp32."""

from __future__ import annotations

import math

import onnx

from export.onnx_export import read_metadata
from export.parity import parity_report_path
from export.pipeline import ExportOptions, export_encoder
from export.quantize import head_nodes
from recon_cli.backends import load_backend
from tests.export.conftest import make_encoder


def test_int8_and_fp16_variants(tmp_path, default_model, shared_data):
    enc, meta = make_encoder("mobilenet_v3_small", default_model)
    out = tmp_path / "edge.onnx"
    opts = ExportOptions(onnx=out, int8=True, fp16=True, calib_count=16, parity_count=8, threads=2,
                         int8_tol_px=1e6, latency_repeat=3,  # report-only for int8 on an untrained net
                         int8_keep_float=("/backbone/features/features.0/",))
    rep = export_encoder(enc, meta, opts, model=default_model)

    int8_path, fp16_path = tmp_path / "edge.int8.onnx", tmp_path / "edge.fp16.onnx"
    assert rep["files"] == {"fp32": str(out), "int8": str(int8_path), "fp16": str(fp16_path)}
    assert parity_report_path(int8_path).is_file() and parity_report_path(fp16_path).is_file()

    q = rep["parity"]["int8"]
    assert q["precision"] == "int8" and q["n_crops"] == 8 and q["reference"] == "torch"
    assert math.isfinite(q["max_landmark_px"]) and 0 < q["mean_landmark_px"] <= q["max_landmark_px"] < 50
    assert q["max_abs_coeff"] > rep["parity"]["fp32"]["max_abs_coeff"]  # it really is a different model
    for key in ("onnx-fp32", "onnx-int8", "onnx-fp16"):
        assert rep["latency_ms"][key]["median_ms"] > 0

    md = read_metadata(int8_path)
    assert md["precision"] == "int8" and md["arch"] == "mobilenet_v3_small" and md["model_hash"] == default_model.content_hash()
    assert md["calibration"]["method"] == "minmax" and md["calibration"]["crops"] == 16
    from recon_cli.cpu import int8_needs_reduce_range

    # 7-bit weights exactly where this CPU's U8S8 kernels would saturate (x86 without VNNI)
    assert md["calibration"]["reduce_range"] is int8_needs_reduce_range()
    graph = onnx.load(str(int8_path)).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # the head (Gemm and the group-scale Mul) stays float: its weight is a plain initializer
    gemm = next(n for n in graph.node if n.op_type == "Gemm")
    assert gemm.name in md["calibration"]["fp32_nodes"]
    assert gemm.input[1] in {i.name for i in graph.initializer}
    assert set(head_nodes(out)) >= {gemm.name}
    stem = [n for n in md["calibration"]["fp32_nodes"] if "/features.0/" in n]
    assert stem and all(n.name not in stem or n.op_type != "QLinearConv" for n in graph.node)
    stem_conv = next(n for n in graph.node if n.name in stem and n.op_type == "Conv")
    assert stem_conv.input[1] in {i.name for i in graph.initializer}  # float weight, no DequantizeLinear

    f = rep["parity"]["fp16"]
    assert f["passed"] and f["max_landmark_px"] < 0.5
    assert read_metadata(fp16_path)["precision"] == "fp16"
    b = load_backend(fp16_path, threads=2)
    assert b.name == "onnx-fp16"
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in onnx.load(str(fp16_path)).graph.initializer)


def test_int8_tolerance_gate(tmp_path, default_model, shared_data):
    """With a tight int8 tolerance the int8 file is refused (and the fp32 one kept)."""
    import pytest

    from export.parity import ParityError

    enc, meta = make_encoder("mobilenet_v3_small", default_model, seed=1)
    out = tmp_path / "edge.onnx"
    with pytest.raises(ParityError) as err:
        export_encoder(enc, meta, ExportOptions(onnx=out, int8=True, calib_count=8, parity_count=4, threads=2,
                                                int8_tol_px=1e-4, latency_repeat=2), model=default_model)
    assert out.is_file() and not (tmp_path / "edge.int8.onnx").exists()
    assert err.value.report["files"] == {"fp32": str(out)} and err.value.report["parity"]["int8"]["passed"] is False


def test_calibration_methods_differ(tmp_path, shared_data):
    """Entropy and Percentile calibration give other activation ranges than MinMax (ONNX
    Runtime's quantize_static alone would give MinMax ranges for 'entropy'). A small conv net
    keeps ONNX Runtime's pure-Python histogram searches short."""
    import numpy as np
    import torch

    from export.calib import load_crops
    from export.onnx_export import calibrate_batchnorm, export_onnx
    from export.quantize import quantize_int8
    from recon_cli.coeffs import CoeffLayout

    layout = CoeffLayout(4, 3, 2)
    torch.manual_seed(0)
    conv = lambda i, o: [torch.nn.Conv2d(i, o, 3, 2, 1), torch.nn.BatchNorm2d(o), torch.nn.ReLU()]  # noqa: E731
    net = torch.nn.Sequential(*conv(3, 8), *conv(8, 16), *conv(16, 16), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(16, layout.total))
    crops = load_crops(None, n=8)
    calibrate_batchnorm(net, crops)
    meta = {"arch": "small", "layout": layout.to_dict(), "size": 224, "model_name": None, "model_hash": None}
    fp32 = export_onnx(net, meta, tmp_path / "m.onnx")
    scales = {}
    for method in ("minmax", "entropy", "percentile"):
        q = quantize_int8(fp32, tmp_path / f"m.{method}.onnx", crops, method=method)
        assert read_metadata(q)["calibration"]["method"] == method
        scales[method] = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(q)).graph.initializer if i.name.endswith("_scale")}
        out = load_backend(q, threads=2)(crops[:2])
        assert out.shape == (2, layout.total) and np.isfinite(out).all()
    for method in ("entropy", "percentile"):
        common = [k for k in scales["minmax"] if k in scales[method] and scales[method][k].size == 1]
        changed = sum(not np.allclose(scales[method][k], scales["minmax"][k]) for k in common)
        assert len(common) >= 3 and changed >= len(common) // 2, (method, changed, len(common))
