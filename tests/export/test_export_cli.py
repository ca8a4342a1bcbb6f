"""`recon export` and `recon bench encoder` on the command line; TensorRT build (skipped where
TensorRT is not installed, with the reason)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def recon(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    code = "import sys; sys.argv = ['recon'] + sys.argv[1:]; from recon_cli.cli.app import main; main()"
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)


def test_export_without_weights_uses_the_shipped_default(tmp_path, shared_data):  # parity crops: the data
    """No --weights: the shipped default encoder is exported and verified; in a build without
    one, the command says so and exits 2."""
    from recon_cli.paths import WEIGHTS_DIR

    r = recon("export", "--onnx", str(tmp_path / "x.onnx"))
    if not (WEIGHTS_DIR / "default.pt").is_file():
        assert r.returncode == 2, r.stderr
        assert "default weights" in r.stderr and "--untrained" in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "x.onnx").exists()
        return
    assert r.returncode == 0, r.stderr
    from export.onnx_export import read_metadata
    from recon_cli.encoders.registry import read_checkpoint

    meta = read_metadata(tmp_path / "x.onnx")
    shipped = read_checkpoint(WEIGHTS_DIR / "default.pt")["meta"]
    assert meta["arch"] == shipped["arch"] and int(meta["size"]) == int(shipped["size"])
    assert meta["model_hash"] == shipped["model_hash"]


def test_export_rejects_bad_options(tmp_path, shared_data):  # export checks its crops before some options
    r = recon("export", "--onnx", str(tmp_path / "x.txt"), "--arch", "resnet50", "--untrained")
    assert r.returncode == 2 and ".onnx" in r.stderr
    r = recon("export", "--onnx", str(tmp_path / "x.onnx"), "--untrained")
    assert r.returncode == 2 and "--arch" in r.stderr and "Traceback" not in r.stderr
    r = recon("export", "--weights", str(tmp_path / "missing.pt"), "--onnx", str(tmp_path / "x.onnx"))
    assert r.returncode == 2 and "not found" in r.stderr


def test_export_checkpoint_cli(tmp_path, shared_data):
    """A training checkpoint → ONNX with its config hash, parity JSON and --json report."""
    import torch

    from export.onnx_export import calibrate_batchnorm, config_hash, perturb_head, read_metadata
    from export.calib import load_crops
    from recon_cli.coeffs import CoeffLayout
    from recon_cli.encoders.registry import build_encoder, save_checkpoint
    from recon_cli.morphable import load_default_model

    model = load_default_model()
    layout = CoeffLayout.for_model(model)
    torch.manual_seed(0)
    enc = build_encoder("mobilenet_v3_small", layout, 224)
    crops = load_crops(None, n=16)
    calibrate_batchnorm(enc, crops)
    perturb_head(enc, layout=layout, probe=crops)
    cfg = {"optim": {"lr": 1e-4}, "losses": {"w_fre": 0.5}}
    ck = save_checkpoint(tmp_path / "enc.pt", enc, arch="mobilenet_v3_small", layout=layout, size=224,
                         model_name=model.name, model_hash=model.content_hash(), config=cfg)
    out, rep = tmp_path / "out" / "enc.onnx", tmp_path / "report.json"
    r = recon("export", "--weights", str(ck), "--onnx", str(out), "--threads", "2", "--parity-crops", "6", "--json", str(rep))
    assert r.returncode == 0, r.stderr[-3000:]
    assert out.is_file() and (out.parent / "enc.onnx.parity.json").is_file()
    report = json.loads(rep.read_text())
    assert report["parity"]["fp32"]["passed"] and report["parity"]["fp32"]["n_crops"] == 6
    assert report["files"]["fp32"] == str(out) and report["landmark_check"] is True
    md = read_metadata(out)
    assert md["config_hash"] == config_hash({"config": cfg}) and md["weights"] == "enc.pt"
    assert md["model_hash"] == model.content_hash() and md["arch"] == "mobilenet_v3_small"
    assert "wrote" in r.stderr and "max landmark shift" in r.stderr

    # an impossible tolerance: exit code 3, no file, the JSON report says why
    bad, bad_rep = tmp_path / "bad.onnx", tmp_path / "bad.json"
    r = recon("export", "--weights", str(ck), "--onnx", str(bad), "--parity-crops", "2", "--tol-coeff", "0", "--json", str(bad_rep))
    assert r.returncode == 3 and "does not match" in r.stderr and "Traceback" not in r.stderr
    assert not bad.exists() and json.loads(bad_rep.read_text())["parity"]["fp32"]["passed"] is False


def test_export_trt_missing_is_clear(tmp_path):
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("TensorRT is installed here")
    r = recon("export", "--arch", "mobilenet_v3_small", "--untrained", "--onnx", str(tmp_path / "x.onnx"), "--trt")
    assert r.returncode == 2
    assert "TensorRT is not installed" in r.stderr and "pip install tensorrt" in r.stderr
    assert not list(tmp_path.iterdir())  # failed before doing any work


def test_tensorrt_engine_build_and_parity(tmp_path, shared_data):
    """Build an fp16 engine from an exported encoder and verify it (needs TensorRT 10 + a GPU)."""
    try:
        import tensorrt  # noqa: F401
    except ImportError as e:
        pytest.skip(f"TensorRT is not installed ({e}): `pip install tensorrt cuda-python` on an NVIDIA GPU machine")
    from export.pipeline import ExportOptions, export_encoder
    from recon_cli.backends import load_backend
    from recon_cli.morphable import load_default_model
    from tests.export.conftest import make_encoder

    model = load_default_model()
    enc, meta = make_encoder("mobilenet_v3_small", model)
    rep = export_encoder(enc, meta, ExportOptions(onnx=tmp_path / "e.onnx", trt=True, trt_precision="fp16", parity_count=8),
                         model=model)
    engine = tmp_path / "e.engine"
    assert rep["files"]["tensorrt"] == str(engine) and (tmp_path / "e.engine.json").is_file()
    assert rep["parity"]["tensorrt-fp16"]["passed"]
    b = load_backend(engine)
    assert b.name == "tensorrt-fp16" and b.meta["profile"]["max"] == 16


def test_bench_encoder_cli(tmp_path, shared_data):
    out = tmp_path / "bench.json"
    r = recon("bench", "encoder", "--arch", "mobilenet_v3_small", "--batch", "1,2", "--threads", "2", "--repeat", "2", "--calib-count", "8",
              "--json", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(out.read_text())
    rows = data["rows"]
    got = {(row["backend"], row["precision"], row["batch"]) for row in rows}
    assert got == {(b, p, n) for b, p in (("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")) for n in (1, 2)}
    for row in rows:
        assert row["median_ms"] > 0 and row["p90_ms"] >= row["median_ms"]
        assert row["images_per_s"] == pytest.approx(1e3 * row["batch"] / row["median_ms"])
        gmac = data["env"]["gmac_mobilenet_v3_small@224"]
        assert row["gflop_s"] == pytest.approx(2 * gmac / (row["per_image_ms"] / 1e3), rel=5e-3)  # env gmac is rounded
    assert data["env"]["gemm_fp32_gflop_s"] > 1
    int8 = next(row for row in rows if row["precision"] == "int8")
    assert int8["max_landmark_px"] is not None and int8["max_landmark_px"] > 0
    assert data["env"]["threads"] == 2 and data["env"]["tensorrt"] and data["env"]["cpu"]
    assert "recon bench encoder" in r.stdout
