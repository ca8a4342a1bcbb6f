"""Encoder runtime backends: metadata, selection by extension, errors, torch/ONNX agreement,
TensorRT availability."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from recon_cli.backends import backend_for, load_backend
from recon_cli.backends.base import EncoderBackend, check_input, check_model_match, decode_metadata, encode_metadata, layout_from_meta
from recon_cli.coeffs import CoeffLayout
from recon_cli.errors import InputError
from tests.conftest import make_random_model


class _Tiny(torch.nn.Module):
    """A small real conv net with the encoder contract (input (B,3,S,S) [0,1])."""

    def __init__(self, total: int):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.head = torch.nn.Linear(8, total)

    def forward(self, x):
        return self.head(self.body(x - 0.5))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from export.onnx_export import export_onnx

    model = make_random_model()
    layout = CoeffLayout.for_model(model)
    torch.manual_seed(0)
    net = _Tiny(layout.total).eval()
    meta = {"arch": "tiny", "layout": layout.to_dict(), "size": 64, "model_name": model.name, "model_hash": model.content_hash()}
    path = tmp_path_factory.mktemp("backends") / "tiny.onnx"
    export_onnx(net, meta, path)
    return net, meta, path, model


def test_metadata_round_trip():
    meta = {"arch": "resnet50", "layout": {"n_id": 80, "n_exp": 64, "n_tex": 80, "n_light": 9}, "size": 224,
            "model_name": "bfm09", "model_hash": "abc", "precision": "int8", "calibration": {"method": "minmax"}}
    props = encode_metadata(meta)
    assert all(k.startswith("recon.") and isinstance(v, str) for k, v in props.items())
    assert decode_metadata({**props, "other": "x"}) == meta
    assert layout_from_meta(meta) == CoeffLayout(80, 64, 80, 9)
    assert layout_from_meta({"layout": '{"n_id": 3, "n_exp": 2, "n_tex": 1}'}).total == 3 + 2 + 1 + 3 + 9 + 3


def test_backend_for_extension():
    assert backend_for("a.pt") == "torch" and backend_for("b.PTH") == "torch"
    assert backend_for("c.onnx") == "onnx"
    assert backend_for("d.engine") == "tensorrt" and backend_for("e.plan") == "tensorrt"
    with pytest.raises(InputError, match="extension"):
        backend_for("f.bin")


def test_load_backend_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_backend(tmp_path / "missing.onnx")
    with pytest.raises(InputError, match="unknown encoder backend"):
        load_backend(tmp_path / "missing.onnx", backend="tflite")
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(InputError, match="not a loadable ONNX"):
        load_backend(bad)


def test_onnx_without_recon_metadata(tmp_path, tiny):
    _, _, path, _ = tiny
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    plain = tmp_path / "plain.onnx"
    onnx.save(proto, str(plain))
    with pytest.raises(InputError, match="not written by `recon export`"):
        load_backend(plain)


def test_onnx_backend_matches_torch(tiny):
    net, meta, path, model = tiny
    b = load_backend(path, threads=1)
    assert isinstance(b, EncoderBackend) and b.name == "onnx-fp32" and b.device == "cpu"
    assert b.meta["model_hash"] == model.content_hash() and b.meta["precision"] == "fp32"
    x = np.random.default_rng(0).random((5, 3, 64, 64), dtype=np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    y = b(x)
    assert y.dtype == np.float32 and y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-5)
    np.testing.assert_allclose(b(x[0]), ref[:1], atol=1e-5)  # a single (3, S, S) crop is batched
    with pytest.raises(InputError, match=r"expected \(B, 3, 64, 64\)"):
        b(np.zeros((1, 3, 32, 32), np.float32))
    check_model_match(b.meta, model)
    with pytest.raises(InputError, match="id/exp/tex"):
        check_model_match(b.meta, make_random_model(n_id=7))


def test_check_input():
    assert check_input(np.zeros((3, 8, 8), np.float64), 8).shape == (1, 3, 8, 8)
    with pytest.raises(InputError):
        check_input(np.zeros((1, 8, 8, 3)), 8)


def test_torch_checkpoint_backend(tmp_path):
    """load_backend(.pt) rebuilds a registry encoder from its checkpoint and agrees with it."""
    from recon_cli.encoders.registry import build_encoder, save_checkpoint

    model = make_random_model()
    layout = CoeffLayout.for_model(model)
    torch.manual_seed(0)
    enc = build_encoder("mobilenet_v3_small", layout, 96).eval()
    torch.nn.init.normal_(enc.head.fc.weight, std=0.01)
    ck = save_checkpoint(tmp_path / "enc.pt", enc, arch="mobilenet_v3_small", layout=layout, size=96,
                         model_name=model.name, model_hash=model.content_hash(), config={"lr": 1e-4})
    b = load_backend(ck, threads=1, device="cpu")
    assert b.name == "torch" and b.meta["arch"] == "mobilenet_v3_small" and b.meta["size"] == 96
    x = np.random.default_rng(1).random((2, 3, 96, 96), dtype=np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(b(x), enc(torch.from_numpy(x)).numpy(), atol=1e-6)


def test_tensorrt_backend_missing_says_how_to_install(tmp_path):
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("TensorRT is installed here: the missing-TensorRT message cannot be checked")
    engine = tmp_path / "enc.engine"
    engine.write_bytes(b"\0" * 16)
    (tmp_path / "enc.engine.json").write_text('{"arch": "resnet50", "layout": {"n_id": 1, "n_exp": 1, "n_tex": 1}, "size": 224}')
    with pytest.raises(InputError) as err:
        load_backend(engine)
    assert "TensorRT is not installed" in str(err.value) and "pip install tensorrt" in str(err.value)
    (tmp_path / "enc.engine.json").unlink()
    with pytest.raises(InputError, match="sidecar"):
        load_backend(engine)
