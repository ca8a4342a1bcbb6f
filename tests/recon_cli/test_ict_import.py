"""The shipped ICT-FaceKit default model: semantics, geometry, and reproducibility from the archive."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest

from recon_cli.errors import InputError
from recon_cli.mesh.topology import boundary_edges, connected_components, face_normals, vertex_normals
from recon_cli.morphable import MorphableModel, load_default_model
from recon_cli.morphable.ict import build_ict_model
from recon_cli.paths import DEFAULT_MODEL_PATH


@pytest.fixture(scope="module")
def model():
    return load_default_model()


def test_dimensions_and_metadata(model):
    assert (model.n_id, model.n_exp, model.n_tex) == (100, 53, 80)
    assert model.landmarks68.shape == (68,) and model.units == "m"
    assert model.exp_names[:2] == ["browDown_L", "browDown_R"] and "jawOpen" in model.exp_names
    assert "MIT License" in model.licence and "USC Institute for Creative Technologies" in model.licence
    assert (DEFAULT_MODEL_PATH.parent / "LICENSE-ICT-FaceKit").read_text().startswith("MIT License")
    assert DEFAULT_MODEL_PATH.stat().st_size < 15e6
    assert 5000 < model.n_verts < 9409  # the face region of ICT's 26,719-vertex head, trimmed


def test_landmark_semantics(model):
    lm = model.mean_shape[model.landmarks68]
    x, z = lm[:, 0], lm[:, 2]
    assert np.all(np.diff(x[0:17]) > 0), "jaw 0-16 runs image-left → image-right"
    assert int(np.argmax(z)) == 30, "nose tip is the most frontal landmark"
    for a, b in [(36, 45), (39, 42), (48, 54), (17, 26), (31, 35)]:  # left/right pairs mirror about x = 0
        assert x[a] < 0 < x[b]
        np.testing.assert_allclose(lm[a] * [-1, 1, 1], lm[b], atol=2e-3)
    assert lm[19, 1] > lm[37, 1] > lm[30, 1] > lm[51, 1] > lm[57, 1] > lm[8, 1], "brow > eye > nose > lips > chin"
    iod = np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0))
    assert 0.055 <= iod <= 0.07, f"inter-ocular (eye-centre) distance {iod:.4f} m"


def test_geometry_frame_and_winding(model):
    v, t = model.mean_shape, model.triangles
    np.testing.assert_allclose(v.mean(0), 0, atol=1e-6)  # centred on the vertex centroid
    width = np.ptp(v[:, 0])
    assert 0.12 < width < 0.18 and np.ptp(v[:, 1]) < 0.25  # metres, no neck/scalp
    assert face_normals(v, t, normalize=False).sum(0)[2] > 0  # projected area faces +z
    n_tip = vertex_normals(v, t)[model.landmarks68[30]]
    assert n_tip[2] > 0.8, f"nose-tip normal {n_tip}"
    cheek = v[model.landmarks68[[2, 14]]]
    n_cheek = vertex_normals(v, t)[model.landmarks68[[2, 14]]]
    assert n_cheek[0, 0] < 0 < n_cheek[1, 0] and (cheek[:, 2] < v[model.landmarks68[30], 2]).all()
    assert connected_components(t, model.n_verts).max() == 0
    assert len(np.unique(np.sort(t, 1), axis=0)) == len(t)
    # holes: the outer border, both eyes and the mouth
    from scipy.sparse.csgraph import connected_components as cc
    import scipy.sparse as sp

    be = boundary_edges(t)
    n_loops = cc(sp.csr_matrix((np.ones(len(be)), (be[:, 0], be[:, 1])), shape=(model.n_verts,) * 2), directed=False)[1]
    assert len(np.unique(n_loops[np.unique(be)])) == 4


def test_bases_scale(model):
    # identity modes are ±1σ: the first mode moves the face by millimetres, later ones less
    rms = np.sqrt((model.id_basis.astype(np.float64) ** 2).sum(-1).mean(-1))
    assert 1e-3 < rms[0] < 1e-2 and rms[-1] < rms[0] / 5
    jaw = model.exp_basis[model.exp_names.index("jawOpen")]
    assert jaw[model.landmarks68[8], 1] < -0.005, "jawOpen lowers the chin by more than 5 mm"
    blink = model.exp_basis[model.exp_names.index("eyeBlink_L")]
    # _L is the subject's left = image right (+x): the upper lid of eye 42-47 moves down
    assert blink[model.landmarks68[44], 1] < -0.003 and abs(blink[model.landmarks68[38], 1]) < 1e-3
    a = model.mean_albedo
    assert (a > 0.05).all() and (a < 0.9).all() and a[:, 0].mean() > a[:, 2].mean()  # skin: red > blue
    assert a[model.landmarks68[19], 0] < np.median(a[:, 0]) - 0.05  # darker brows
    rms = np.sqrt((model.tex_basis.astype(np.float64).reshape(80, -1) ** 2).mean(1))
    assert 1e-3 < rms.min() and rms.max() < 0.1 and int(np.argmax(rms)) == 0  # a few % albedo; tone first
    const = model.tex_basis[0]  # mode 0: constant over the mesh, along the mean skin colour
    np.testing.assert_allclose(const, np.broadcast_to(const[0], const.shape), atol=1e-3)


def test_decode_of_default_model_runs_in_numpy_and_torch(model):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    c = [rng.normal(size=(2, n)).astype(np.float32) for n in (model.n_id, model.n_exp, model.n_tex)]
    v_np, a_np = model.decode(*c)
    v_t, a_t = model.decode(*[torch.from_numpy(x) for x in c])
    np.testing.assert_allclose(v_t.numpy(), v_np, atol=1e-6)
    np.testing.assert_allclose(a_t.numpy(), a_np, atol=1e-6)


@pytest.mark.slow  # streams the 400 MB (uncompressed) archive once: ~15 s
def test_import_ict_cli_rebuilds_the_shipped_file_byte_for_byte(tmp_path, shared_data):
    from typer.testing import CliRunner

    from recon_cli.cli.app import app

    out = tmp_path / "ict_face.npz"
    r = CliRunner().invoke(app, ["model", "import-ict", str(shared_data / "ict-facekit"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert MorphableModel.load(out).content_hash() == load_default_model().content_hash()
    assert out.read_bytes() == DEFAULT_MODEL_PATH.read_bytes(), "rebuild must reproduce the shipped file"


def _tiny_archive(path, members: dict[str, bytes]):
    with tarfile.open(path, "w:xz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_malformed_sources(tmp_path):
    with pytest.raises(InputError, match="ICT-FaceKit source not found") as e:
        build_ict_model(tmp_path / "nothing")
    assert "github.com/ICT-VGL/ICT-FaceKit" in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no FaceXModel/ folder and no archive"):
        build_ict_model(tmp_path / "empty")
    txt = tmp_path / "model.txt"
    txt.write_text("x")
    with pytest.raises(InputError, match="expected an ICT-FaceKit folder or a .tar.xz"):
        build_ict_model(txt)
    bad = tmp_path / "broken.tar.xz"
    bad.write_bytes(b"not an archive")
    with pytest.raises(InputError, match="broken.tar.xz: not a readable tar archive"):
        build_ict_model(bad)
    arch = tmp_path / "partial.tar.xz"
    _tiny_archive(arch, {"FaceXModel/vertex_indices.json": b"{}"})
    with pytest.raises(InputError, match="generic_neutral_mesh.obj is missing"):
        build_ict_model(arch)
    _tiny_archive(arch, {"FaceXModel/generic_neutral_mesh.obj": b"v 0 0 0\nv 1 0 0\nf 1 2 1\n"})
    with pytest.raises(InputError, match="generic_neutral_mesh.obj: has 2 vertices, ICT-FaceKit meshes have 26719"):
        build_ict_model(arch)
    folder = tmp_path / "FaceXModel"
    folder.mkdir()
    (folder / "vertex_indices.json").write_text(json.dumps({"expressions": []}))
    (folder / "generic_neutral_mesh.obj").write_text("v 0 0 0\n" * 26719 + "usemtl M_Face\nf 1 2 3 4\n")
    with pytest.raises(InputError, match="vertex_indices.json is malformed or lacks"):
        build_ict_model(folder)
    (folder / "vertex_indices.json").write_text(json.dumps({"expressions": ["jawOpen"], "idx_to_landmark_verts": [1] * 68}))
    with pytest.raises(InputError, match="identity modes must be identity000.obj"):
        build_ict_model(folder)
