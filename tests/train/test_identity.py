"""Face-recognition networks for the identity loss: strict checkpoint loading, the crop box,
frozen weights with gradients to the render, and real embeddings that tell faces apart."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import torch

from recon_cli.errors import InputError
from train.identity import IdentityNet, IResNet, MobileFaceNet, build_backbone, detect_kind, iresnet, load_identity_network
from train.identity.crop import (ALIGN_5PTS_224, ARCFACE_5PTS_112, SPHEREFACE_5PTS_112x96, default_box, fit_box,
                                 project_template_224)
from train.losses import IdentityLoss, build_identity_loss

MFN = "identity/mobilefacenet-arcface/068.ckpt"


@pytest.fixture(scope="module")
def mfn_path(shared_data):
    p = shared_data / MFN
    if not p.is_file():
        pytest.skip(f"{p} not in the development data")
    return p


@pytest.fixture(scope="module")
def mfn(mfn_path):
    return load_identity_network(mfn_path)


def _aligned_faces(shared_data, n=None):
    """Aligned 224 crops as the pipeline makes them: similarity from the 5 labelled points to
    the project's template; RGB float in [0, 1], ``(N, 3, 224, 224)``."""
    folder = shared_data / "faces" / "deep3d-examples"
    names = sorted(p for p in folder.iterdir() if p.suffix in (".jpg", ".png"))[:n]
    out = []
    for p in names:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)[..., ::-1]
        lm = np.loadtxt(p.with_suffix(".txt")).astype(np.float32)
        M, _ = cv2.estimateAffinePartial2D(lm, project_template_224().astype(np.float32), method=cv2.LMEDS)
        crop = cv2.warpAffine(np.ascontiguousarray(img), M, (224, 224), flags=cv2.INTER_LINEAR)
        out.append(torch.from_numpy(crop.transpose(2, 0, 1).copy()).float() / 255.0)
    return [p.name for p in names], torch.stack(out)


def test_mobilefacenet_checkpoint_loads_strictly(mfn_path):
    ckpt = torch.load(mfn_path, map_location="cpu", weights_only=True)
    assert set(ckpt) == {"epoch", "net_state_dict"}
    net = MobileFaceNet()
    net.load_state_dict(ckpt["net_state_dict"], strict=True)  # raises on any key/shape mismatch
    assert detect_kind(ckpt["net_state_dict"]) == "mobilefacenet"
    with torch.no_grad():
        assert net.eval()(torch.zeros(1, 3, 112, 96)).shape == (1, 128)


def test_same_face_is_closer_than_different_people(mfn, shared_data):
    names, faces = _aligned_faces(shared_data)
    assert len(names) >= 10
    # same person: shifted by a few pixels and brightened
    other = (torch.roll(faces, shifts=(3, -2), dims=(2, 3)) * 1.1 + 0.03).clamp(0, 1)
    with torch.no_grad():
        f, g = mfn(faces), mfn(other)
    assert f.shape == (len(names), 128)
    assert torch.allclose(f.norm(dim=1), torch.ones(len(names)), atol=1e-5)
    same = (f * g).sum(1)
    sim = f @ f.T
    different = sim[~torch.eye(len(names), dtype=torch.bool)]
    assert same.min() > 0.7, same
    assert different.mean() < 0.2
    assert same.min() > different.max(), (same.min(), different.max())
    # the loss on a pair of different people is far larger than on the same person
    loss = IdentityLoss(mfn)
    assert loss(faces[:4], other[:4]) < 0.5 * loss(faces[:4], faces[4:8])


def test_identity_network_is_frozen_and_grads_reach_the_render(mfn, shared_data):
    _, faces = _aligned_faces(shared_data, 2)
    loss_fn = IdentityLoss(mfn)
    loss_fn.train()  # the trainer puts everything in train mode: BN statistics must not move
    assert not mfn.backbone.training
    before = mfn.backbone.conv1.bn.running_mean.clone()
    render = (faces.flip(0) * 0.8 + 0.1).requires_grad_()
    loss = loss_fn(faces, render)
    loss.backward()
    assert 0.0 < loss.item() < 2.0
    assert render.grad is not None and torch.isfinite(render.grad).all() and render.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in mfn.parameters())
    assert torch.equal(before, mfn.backbone.conv1.bn.running_mean)
    # pixels outside the face box get no gradient (the box starts ~29 px from the left)
    assert render.grad[..., :, :20].abs().sum() == 0


def test_crop_box_maps_the_alignment_template_onto_the_network_templates(shared_data):
    from scipy.io import loadmat

    # the 5-point template in the 224 crop, recomputed from Deep3DFaceRecon's 3-D landmarks
    lm = loadmat(str(shared_data / "bfm-topology" / "similarity_Lm3D_all.mat"))["lm"]
    idx = np.array([31, 37, 40, 43, 46, 49, 55]) - 1
    p5 = np.stack([lm[idx[0]], lm[idx[[1, 2]]].mean(0), lm[idx[[3, 4]]].mean(0), lm[idx[5]], lm[idx[6]]])[[1, 2, 0, 3, 4]]
    pts = np.stack([112 + 102 * p5[:, 0], 112 - 102 * p5[:, 1]], 1)
    np.testing.assert_allclose(pts, ALIGN_5PTS_224, atol=1e-3)
    for src in (project_template_224(), ALIGN_5PTS_224):
        for hw, tmpl in (((112, 96), SPHEREFACE_5PTS_112x96), ((112, 112), ARCFACE_5PTS_112)):
            x0, y0, x1, y1 = default_box(hw, src)
            # map template points (index coords) through the box into the network image
            u = (src + 0.5) / 224
            mapped = np.stack([(u[:, 0] - x0) / (x1 - x0) * hw[1], (u[:, 1] - y0) / (y1 - y0) * hw[0]], 1) - 0.5
            assert np.abs(mapped - tmpl).max() < 2.5  # px: residual of a scale+translation fit
            assert (x1 - x0) / hw[1] == pytest.approx((y1 - y0) / hw[0])  # square pixels
    assert default_box((112, 96)) == default_box((112, 96), project_template_224())
    assert fit_box(tmpl, 112, tmpl, (112, 112)) == pytest.approx((0.0, 0.0, 1.0, 1.0))


def test_crop_samples_the_box():
    net = IdentityNet(MobileFaceNet(), "mobilefacenet", box=(0.25, 0.0, 0.75, 1.0), supersample=1)
    x = torch.zeros(1, 3, 224, 224)
    x[..., :, 56:168] = 1.0  # the middle half of the columns is white
    crop = net.crop(x)
    assert crop.shape == (1, 3, 112, 96)
    assert torch.allclose(crop, torch.ones_like(crop))


def test_iresnet_state_dict_round_trip_through_the_loader(tmp_path):
    torch.manual_seed(0)
    ref = iresnet("r50").eval()
    for m in ref.modules():  # non-trivial BN statistics so that a wrong load would show
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "backbone.pth"
    torch.save({f"module.{k}": v for k, v in ref.state_dict().items()}, path)  # DataParallel prefix
    net = load_identity_network(path)  # kind detected from the keys
    assert net.kind == "iresnet50" and net.input_hw == (112, 112) and net.embed_dim == 512
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        want = torch.nn.functional.normalize(ref((net.crop(x) - 0.5) / 0.5), dim=-1)
        got = net(x)
    assert got.shape == (2, 512)
    torch.testing.assert_close(got, want)
    with pytest.raises(InputError, match="does not match the mobilefacenet"):
        load_identity_network(path, "mobilefacenet")


def test_iresnet100_layout():
    state_keys = {k: v for k, v in build_backbone("iresnet100").state_dict().items()}
    assert detect_kind(state_keys) == "iresnet100"
    assert sum(1 for k in state_keys if k.startswith("layer3.") and k.endswith(".conv1.weight")) == 30
    assert isinstance(build_backbone("r50"), IResNet)


def test_missing_weights_disable_the_loss_with_a_warning_unless_named(tmp_path, monkeypatch):
    import train.losses.identity as ident

    monkeypatch.setattr(ident, "default_identity_weights", lambda: tmp_path / "absent" / "068.ckpt")
    with pytest.warns(RuntimeWarning, match="--identity-weights"):
        assert build_identity_loss(None) is None  # the default (development data) is optional
    with pytest.raises(InputError, match="nope.ckpt.*not found"):
        build_identity_loss(tmp_path / "nope.ckpt")  # a named file is not


def test_bad_weights_file_is_an_input_error(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read"):
        load_identity_network(bad)
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3)}, other)
    with pytest.raises(InputError, match="cannot tell"):
        load_identity_network(other)
    with pytest.raises(InputError, match="unknown identity network"):
        load_identity_network(other, "vgg")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError):
            build_identity_loss(bad)  # an existing but broken file is an error, not a silent skip
