"""Encoders: the input/output contract, zero-initialised head, torchvision-format weights,
checkpoint round trip and its errors."""

from __future__ import annotations

import pytest
import torch

from recon_cli.coeffs import CoeffLayout
from recon_cli.encoders import ARCHS, build_encoder, load_checkpoint, load_pretrained, read_checkpoint, save_checkpoint
from recon_cli.encoders.encoder import IMAGENET_MEAN, IMAGENET_STD
from recon_cli.errors import InputError

LAYOUT = CoeffLayout(80, 64, 80, 9)
FEATURES = {"resnet50": 2048, "resnet18": 512, "mobilenet_v3_large": 960, "mobilenet_v3_small": 576}
# parameter counts of torchvision's backbones without their classifiers
BACKBONE_PARAMS = {"resnet50": 23_508_032, "resnet18": 11_176_512}


def _perturb(encoder, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        encoder.head.fc.weight.copy_(torch.randn(encoder.head.fc.weight.shape, generator=g) * 0.05)
        encoder.head.fc.bias.copy_(torch.randn(encoder.head.fc.bias.shape, generator=g) * 0.05)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_untrained_encoder_outputs_exact_zeros(arch):
    torch.manual_seed(0)
    enc = build_encoder(arch, LAYOUT, 224)
    assert enc.backbone.out_dim == FEATURES[arch]
    assert enc.arch == arch and enc.layout == LAYOUT and enc.size == 224
    x = torch.rand(2, 3, 64, 64)  # the network is size-agnostic; 64 keeps the test fast
    with torch.no_grad():
        y = enc.eval()(x)
        y_train = enc.train()(x)
    assert y.shape == (2, LAYOUT.total) and y.dtype == torch.float32
    assert torch.count_nonzero(y) == 0 and torch.count_nonzero(y_train) == 0
    # gradients reach the head from the first step (zero weights, non-zero features)
    enc.train()
    enc(x).sum().backward()
    assert enc.head.fc.weight.grad.abs().sum() > 0


def test_backbones_have_the_torchvision_sizes():
    for arch, n in BACKBONE_PARAMS.items():
        assert sum(p.numel() for p in build_encoder(arch, LAYOUT).backbone.parameters()) == n


def test_normalisation_inside_and_group_scale():
    enc = build_encoder("mobilenet_v3_small", LAYOUT, group_scale={"trans": 0.05}).eval()
    _perturb(enc)
    x = torch.rand(1, 3, 96, 96)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        raw = enc.head.fc(enc.backbone((x - mean) / std))
        y = enc(x)
    scale = torch.ones(LAYOUT.total)
    scale[LAYOUT.slices["trans"]] = 0.05
    torch.testing.assert_close(y, raw * scale)
    default = build_encoder("resnet18", LAYOUT)
    assert torch.all(default.head.scale[LAYOUT.slices["trans"]] == 0.1)
    assert torch.all(default.head.scale[LAYOUT.slices["id"]] == 1.0)
    with pytest.raises(ValueError, match="unknown coefficient group"):
        build_encoder("resnet18", LAYOUT, group_scale={"pose": 1.0})


def test_unknown_arch_is_an_input_error():
    with pytest.raises(InputError, match="unknown encoder architecture"):
        build_encoder("vgg16", LAYOUT)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small"])
def test_traces_without_baked_shapes(arch):
    """No data-dependent Python control flow: a trace at batch 1 runs at batch 3."""
    enc = build_encoder(arch, LAYOUT).eval()
    _perturb(enc)
    with torch.no_grad():
        traced = torch.jit.trace(enc, torch.rand(1, 3, 64, 64), check_trace=False)
        x = torch.rand(3, 3, 64, 64)
        torch.testing.assert_close(traced(x), enc(x))


def test_checkpoint_round_trip(tmp_path):
    enc = build_encoder("resnet18", LAYOUT, 224, group_scale={"trans": 0.05, "angles": 0.5})
    _perturb(enc, 1)
    enc.train()
    with torch.no_grad():
        enc(torch.rand(4, 3, 64, 64))  # move BN running statistics away from their init
    enc.eval()
    path = tmp_path / "ckpt" / "best.pt"
    cfg = {"optim": {"lr": 1e-4}, "losses": {"enabled": ["photo", "wing"]}}
    save_checkpoint(path, enc, arch="resnet18", layout=LAYOUT, size=224, model_name="ict-facekit",
                    model_hash="abc123", config=cfg, extra={"step": 7})
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.pt"]  # no temporary left behind
    loaded, meta = load_checkpoint(path)
    assert meta == {"arch": "resnet18", "layout": LAYOUT.to_dict(), "size": 224, "model_name": "ict-facekit",
                    "model_hash": "abc123", "config": cfg, "format_version": 1}
    assert not loaded.training and loaded.layout == LAYOUT
    assert torch.equal(loaded.head.scale, enc.head.scale)  # the per-group scale travels with the weights
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), enc(x), rtol=0, atol=0)
    assert read_checkpoint(path)["extra"] == {"step": 7}


def test_checkpoint_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(InputError, match=r"cannot read .*bad\.pt: \w+Error"):  # the exception's type, not a bare key
        load_checkpoint(bad)
    plain = tmp_path / "plain.pt"
    torch.save({"conv1.weight": torch.zeros(1)}, plain)
    with pytest.raises(InputError, match="not a recon encoder checkpoint"):
        load_checkpoint(plain)
    enc = build_encoder("mobilenet_v3_small", LAYOUT)
    good = tmp_path / "good.pt"
    save_checkpoint(good, enc, arch="mobilenet_v3_small", layout=LAYOUT, size=224, model_name="m", model_hash="h", config={})
    obj = torch.load(good, weights_only=True)
    obj["state_dict"].pop("head.fc.bias")
    torch.save(obj, tmp_path / "damaged.pt")
    with pytest.raises(InputError, match="weights do not match"):
        load_checkpoint(tmp_path / "damaged.pt")
    obj = torch.load(good, weights_only=True)
    obj["meta"]["format_version"] = 99
    torch.save(obj, tmp_path / "future.pt")
    with pytest.raises(InputError, match="format 99"):
        load_checkpoint(tmp_path / "future.pt")
    with pytest.raises(ValueError, match="does not match the encoder"):
        save_checkpoint(tmp_path / "x.pt", enc, arch="resnet50", layout=LAYOUT, size=224, model_name="m", model_hash="h")


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small"])
def test_pretrained_torchvision_format(tmp_path, arch):
    torch.manual_seed(1)
    donor = build_encoder(arch, LAYOUT).backbone
    state = dict(donor.state_dict())
    # a torchvision checkpoint also carries its ImageNet classifier
    if arch.startswith("resnet"):
        state["fc.weight"], state["fc.bias"] = torch.zeros(1000, donor.out_dim), torch.zeros(1000)
    else:
        state["classifier.0.weight"], state["classifier.3.bias"] = torch.zeros(1024, 576), torch.zeros(1000)
    path = tmp_path / f"{arch}.pth"
    torch.save(state, path)
    enc = build_encoder(arch, LAYOUT, pretrained=path)
    for k, v in donor.state_dict().items():
        assert torch.equal(enc.backbone.state_dict()[k], v), k
    with torch.no_grad():
        assert torch.count_nonzero(enc.eval()(torch.rand(1, 3, 64, 64))) == 0  # head still zero
    # weights of another architecture: a clear message naming what does not match
    other = "mobilenet_v3_small" if arch == "resnet18" else "resnet18"
    with pytest.raises(InputError, match=f"does not match the {other} backbone") as e:
        build_encoder(other, LAYOUT, pretrained=path)
    assert "missing" in str(e.value) and "--arch" in str(e.value)
    with pytest.raises(InputError, match="not found"):
        load_pretrained(enc, tmp_path / "none.pth")
