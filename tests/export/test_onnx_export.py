"""ONNX export of real registry encoders (untrained, random non-zero head) verified against
PyTorch on real face crops; metadata round trip; the parity-failure path."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from export.onnx_export import read_metadata
from export.parity import ParityError, parity_report_path
from export.pipeline import ExportOptions, export_encoder
from recon_cli.backends import load_backend
from recon_cli.backends.torch_backend import TorchBackend
from tests.export.conftest import make_encoder


def _export_and_check(arch, model, tmp_path, exporter="torchscript"):
    enc, meta = make_encoder(arch, model)
    out = tmp_path / f"{arch}.onnx"
    rep = export_encoder(enc, meta, ExportOptions(onnx=out, exporter=exporter, parity_count=8, threads=2, latency_repeat=2), model=model)
    assert out.is_file()
    fp32 = rep["parity"]["fp32"]
    assert fp32["passed"], fp32
    assert fp32["max_abs_coeff"] < 1e-3 and fp32["max_landmark_px"] < 0.05
    assert fp32["n_crops"] == 8
    on_disk = json.loads(parity_report_path(out).read_text())
    assert on_disk["passed"] and on_disk["max_landmark_px"] == pytest.approx(fp32["max_landmark_px"])
    return enc, meta, out


def _check_metadata_and_batches(enc, meta, out, model, crops):
    md = read_metadata(out)
    assert md["arch"] == meta["arch"] and md["layout"] == meta["layout"] and md["size"] == 224
    assert md["model_name"] == model.name and md["model_hash"] == model.content_hash()
    assert md["precision"] == "fp32" and md["recon_version"] and md["opset"] >= 17 and "config_hash" in md
    assert "[0, 1]" in md["input"]
    proto = onnx.load(str(out))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    dim0 = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param and not dim0.dim_value  # dynamic batch
    backend = load_backend(out, threads=2)
    assert backend.meta["arch"] == meta["arch"] and backend.name == "onnx-fp32"
    ref = TorchBackend(enc, meta)
    for b in (1, 3):
        y = backend(crops[:b])
        assert y.shape == (b, sum(meta["layout"][k] for k in ("n_id", "n_exp", "n_tex", "n_light")) + 6)
        np.testing.assert_allclose(y, ref(crops[:b]), atol=1e-3)
    assert backend(crops[:4]).std(0).max() > 1e-2  # the random head gives non-trivial, crop-dependent outputs


def test_export_edge_backbone(tmp_path, default_model, real_crops):
    enc, meta, out = _export_and_check("mobilenet_v3_large", default_model, tmp_path)
    _check_metadata_and_batches(enc, meta, out, default_model, real_crops)
    assert "source_scale" not in read_metadata(out)  # not recorded: not invented


def test_export_carries_the_training_resolution(tmp_path, default_model):
    """``source_scale`` (the training faces' resolution) and ``yaw_symmetry`` (the asymmetry table)
    travel to the ONNX file and back, so an export crops a sharp photo and corrects a turned face as
    its checkpoint does."""
    import numpy as np

    from recon_cli.pipeline.reconstruct import Reconstructor
    from recon_cli.pipeline.symmetry import KNOTS_DEG, YawSymmetry

    enc, meta = make_encoder("mobilenet_v3_small", default_model)
    table = np.random.default_rng(0).normal(size=(len(KNOTS_DEG) - 1, default_model.n_id + default_model.n_exp))
    sym = YawSymmetry(np.asarray(KNOTS_DEG), table, faces=5).to_meta()
    meta = {**meta, "source_scale": 1.8258, "yaw_symmetry": sym}
    out = tmp_path / "enc.onnx"
    export_encoder(enc, meta, ExportOptions(onnx=out, parity_count=2, threads=2, latency_repeat=1), model=default_model)
    assert read_metadata(out)["source_scale"] == 1.8258
    backend = load_backend(out, threads=1)
    assert Reconstructor(backend, default_model).align_cfg.source_scale == 1.8258
    assert Reconstructor(backend, default_model, source_res="native").align_cfg.source_scale is None
    np.testing.assert_array_equal(Reconstructor(backend, default_model).symmetry.table, table)  # full precision


@pytest.mark.slow  # ResNet-50 export + parity takes ~30-60 s on 2 busy cores
def test_export_resnet50(tmp_path, default_model, real_crops):
    enc, meta, out = _export_and_check("resnet50", default_model, tmp_path)
    _check_metadata_and_batches(enc, meta, out, default_model, real_crops)


def test_dynamo_exporter_matches(tmp_path, default_model, shared_data):  # parity on the data's crops
    _, _, out = _export_and_check("mobilenet_v3_small", default_model, tmp_path, exporter="dynamo")
    assert read_metadata(out)["exporter"] == "dynamo"


def test_parity_failure_removes_file(tmp_path, default_model, shared_data, monkeypatch):
    """A tampered ONNX (head weights scaled by 1 %) fails the check: ParityError, no file left,
    the report says why."""
    import export.pipeline as pipeline

    real_export = pipeline.export_onnx

    def tampered_export(encoder, meta, out, **kw):
        real_export(encoder, meta, out, **kw)
        proto = onnx.load(str(out))
        gemm = next(n for n in proto.graph.node if n.op_type == "Gemm")
        init = next(i for i in proto.graph.initializer if i.name == gemm.input[1])
        w = onnx.numpy_helper.to_array(init) * 1.01
        init.CopyFrom(onnx.numpy_helper.from_array(w.astype(np.float32), init.name))
        onnx.save(proto, str(out))
        return out

    monkeypatch.setattr(pipeline, "export_onnx", tampered_export)
    enc, meta = make_encoder("mobilenet_v3_small", default_model)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ParityError) as err:
        export_encoder(enc, meta, ExportOptions(onnx=out, parity_count=4, threads=2), model=default_model)
    assert err.value.exit_code == 3 and "does not match" in str(err.value)
    assert err.value.report["parity"]["fp32"]["passed"] is False and not err.value.report["files"]
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp.onnx") or p.suffix == ".tmp"]
    rep = json.loads(parity_report_path(out).read_text())
    assert rep["passed"] is False and rep["failures"]
    assert rep["max_landmark_px"] > 0.05
