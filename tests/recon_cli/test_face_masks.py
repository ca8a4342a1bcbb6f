"""Region masks from the MediaPipe mesh on real photos; weights; optional BiSeNet parser."""

from __future__ import annotations

import numpy as np
import pytest

from recon_cli.face import masks as M
from recon_cli.face.frontend import FaceFrontEnd
from recon_cli.face.io import read_rgb


@pytest.fixture(scope="module")
def prepared(shared_data):
    d = shared_data / "faces" / "deep3d-examples"
    with FaceFrontEnd() as fe:
        return [fe.process(read_rgb(d / n))[0] for n in ("000002.jpg", "015259.jpg", "vd025.png")]


def test_labels_lie_inside_the_face_oval(prepared):
    for pf in prepared:
        lab = pf.labels
        assert lab.shape == (224, 224) and lab.dtype == np.uint8
        assert set(np.unique(lab)) == {0, 1, 2, 3, 4}
        assert not ((lab > 0) & (M.face_area(pf.mesh, 224) == 0)).any()
        oval = np.zeros_like(lab)  # frontal faces: the mesh silhouette is the face-oval polygon
        M._fill(oval, pf.mesh[M.region_indices()["oval"], :2], 1)
        assert ((lab > 0) & (oval == 0)).sum() < 0.05 * (lab > 0).sum()  # nose beyond the oval when turned
        assert ((lab == 0) & (oval == 1)).sum() < 0.01 * (lab > 0).sum()
        yy, xx = np.nonzero(lab == M.EYES)
        ny, nx = np.nonzero(lab == M.NOSE)
        my, mx = np.nonzero(lab == M.MOUTH)
        assert yy.mean() < ny.mean() < my.mean()  # eyes above nose above mouth
        # each region contains its landmarks: eye corners, nose tip, mouth corners
        at = lambda p: lab[int(p[1]), int(p[0])]  # noqa: E731
        assert at(pf.lm68[30]) == M.NOSE and at(pf.lm68[62]) == M.MOUTH
        assert at((pf.lm68[37] + pf.lm68[41]) / 2) == M.EYES
        assert at(pf.lm68[19] + [0, 1]) == M.EYES  # brows count as eyes by default
        assert (lab == M.SKIN).sum() > (lab > M.SKIN).sum()


def test_profile_face_area_covers_nose_and_lips(shared_data):
    """In profile the face-oval polygon cuts off the nose; the triangle union must not."""
    aflw = shared_data / "aflw-train"
    yaws = np.load(aflw / "yaws.npy")
    names = (aflw / "list.txt").read_text().split()
    checked = 0
    with FaceFrontEnd() as fe:
        for k in np.flatnonzero(np.abs(yaws) > 60)[:12]:
            faces = fe.process(read_rgb(aflw / "images" / names[k]))
            if not faces:
                continue
            pf = faces[0]
            for j in (30, 33, 51, 57, 62):
                x, y = np.clip(pf.lm68[j].astype(int), 0, 223)
                assert pf.labels[y, x] > 0, (names[k], j)
            checked += 1
    assert checked >= 5


def test_brows_can_be_skin(prepared):
    pf = prepared[0]
    lab = M.region_labels(pf.mesh, 224, M.MaskConfig(brows_as_eyes=False))
    assert (lab == M.EYES).sum() < (pf.labels == M.EYES).sum()


def test_label_weights_and_exclusion():
    lab = np.array([[0, 1, 2], [3, 4, 1]], np.uint8)
    np.testing.assert_allclose(M.label_weights(lab), [[0, 1.0, 1.5], [1.5, 1.2, 1.0]], rtol=1e-6)
    w = M.label_weights(lab, M.RegionWeights(skin=2.0, mouth=0.5))
    assert w[0, 1] == 2.0 and w[1, 1] == 0.5
    keep = np.array([[True, False, True], [True, True, True]])
    assert M.exclude(lab, keep)[0, 1] == 0 and lab[0, 1] == 1


def test_bisenet_layout_and_parser(tmp_path, prepared):
    torch = pytest.importorskip("torch")
    from recon_cli.errors import InputError
    from recon_cli.face.parsing import CLASSES, FaceParser, build_bisenet

    net = build_bisenet(19)
    keys = set(net.state_dict())
    # parameter names of face-parsing.PyTorch's 79999_iter.pth
    for k in ("cp.resnet.conv1.weight", "cp.resnet.layer2.0.downsample.0.weight", "cp.resnet.layer4.1.bn2.running_var",
              "cp.arm16.conv.conv.weight", "cp.arm32.bn_atten.bias", "cp.conv_head16.bn.weight", "cp.conv_avg.conv.weight",
              "ffm.convblk.conv.weight", "ffm.conv1.weight", "ffm.conv2.weight", "conv_out.conv.conv.weight",
              "conv_out.conv_out.weight", "conv_out16.conv_out.weight", "conv_out32.conv.bn.num_batches_tracked"):
        assert k in keys, k
    assert net.state_dict()["conv_out.conv_out.weight"].shape == (19, 256, 1, 1)
    ckpt = tmp_path / "bisenet.pth"
    torch.manual_seed(0)
    torch.save(net.state_dict(), ckpt)
    parser = FaceParser(ckpt, input_size=64)
    cls = parser.parse(prepared[0].crop)
    assert cls.shape == (224, 224) and cls.max() < len(CLASSES)
    assert parser.face_area(prepared[0].crop).dtype == bool
    bad = tmp_path / "bad.pth"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(InputError):
        FaceParser(bad)
    with pytest.raises(InputError):
        FaceParser(tmp_path / "missing.pth")
