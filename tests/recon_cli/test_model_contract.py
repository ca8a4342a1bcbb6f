"""The MorphableModel contract: decode, torch/NumPy agreement, storage, error messages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon_cli.coeffs import CoeffLayout
from recon_cli.errors import InputError
from recon_cli.morphable import MorphableModel
from tests.conftest import make_random_model


def test_decode_matches_direct_numpy(random_model):
    m = random_model
    rng = np.random.default_rng(1)
    idc, exc, tex = rng.normal(size=(3, m.n_id)), rng.normal(size=(3, m.n_exp)), rng.normal(size=(3, m.n_tex))
    verts, albedo = m.decode(idc, exc, tex)
    for b in range(3):
        ref = m.mean_shape.astype(np.float64).copy()
        for k in range(m.n_id):
            ref += idc[b, k] * m.id_basis[k]
        for k in range(m.n_exp):
            ref += exc[b, k] * m.exp_basis[k]
        np.testing.assert_allclose(verts[b], ref, atol=1e-6)
        ref_t = m.mean_albedo + np.tensordot(tex[b], m.tex_basis, axes=1)
        np.testing.assert_allclose(albedo[b], ref_t, atol=1e-6)
    assert verts.shape == (3, m.n_verts, 3) and verts.dtype == np.float32


def test_torch_and_numpy_agree(random_model):
    m = random_model
    rng = np.random.default_rng(2)
    c = [rng.normal(size=(2, n)).astype(np.float32) for n in (m.n_id, m.n_exp, m.n_tex)]
    v_np, a_np = m.decode(*c)
    v_t, a_t = m.decode(*[torch.from_numpy(x) for x in c])
    assert isinstance(v_t, torch.Tensor)
    np.testing.assert_allclose(v_t.numpy(), v_np, atol=1e-6)
    np.testing.assert_allclose(a_t.numpy(), a_np, atol=1e-6)


def test_decode_is_differentiable(random_model):
    m = random_model
    idc = torch.zeros(1, m.n_id, dtype=torch.float64, requires_grad=True)
    exc = torch.zeros(1, m.n_exp, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: m.shape(a, b), (idc, exc))


def test_save_load_roundtrip_and_determinism(tmp_path, random_model):
    p1, p2 = tmp_path / "a.npz", tmp_path / "b.npz"
    random_model.save(p1)
    make_random_model().save(p2)
    assert p1.read_bytes() == p2.read_bytes(), "saving the same model twice must give identical bytes"
    m = MorphableModel.load(p1)
    assert m.name == "random" and m.n_verts == random_model.n_verts
    np.testing.assert_allclose(m.id_basis, random_model.id_basis, rtol=1e-3, atol=1e-7)  # float16 storage
    np.testing.assert_array_equal(m.triangles, random_model.triangles)
    assert m.content_hash() == random_model.content_hash()


def test_vertex_faces_adjacency(random_model):
    vf = random_model.vertex_faces
    for v in range(random_model.n_verts):
        want = set(np.nonzero((random_model.triangles == v).any(1))[0])
        assert set(vf[v][vf[v] >= 0]) == want


def test_layout_split():
    layout = CoeffLayout(80, 64, 80)
    assert layout.total == 239 and CoeffLayout(80, 64, 80, 27).total == 257
    x = np.arange(239.0)[None]
    parts = layout.split(x)
    assert parts["angles"].shape == (1, 3) and parts["trans"][0, -1] == 238 and parts["light"].shape == (1, 9)
    with pytest.raises(ValueError, match="239"):
        layout.split(np.zeros((1, 10)))


def test_load_errors_name_the_file(tmp_path, random_model):
    with pytest.raises(InputError, match="not found"):
        MorphableModel.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="bad.npz"):
        MorphableModel.load(bad)
    partial = tmp_path / "partial.npz"
    np.savez(partial, mean_shape=np.zeros((3, 3)))
    with pytest.raises(InputError, match="missing arrays"):
        MorphableModel.load(partial)


def test_info_summarises_long_metadata(tmp_path):
    m = make_random_model()
    m.meta = {"runs": [[i, i + 1] for i in range(50)], "short": [1, 2], "nested": {"k": list(range(20))}}
    info = m.info()
    assert info["meta"] == {"runs": "<50 items>", "short": [1, 2], "nested": {"k": "<20 items>"}}
    m.save(tmp_path / "m.npz")
    assert MorphableModel.load(tmp_path / "m.npz").meta["runs"][49] == [49, 50]  # stored in full


def test_model_packages_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; import recon_cli.morphable, recon_cli.morphable.ict, recon_cli.morphable.bfm, "
            "recon_cli.morphable.sampling, recon_cli.mesh.writers, recon_cli.mesh.readers; "
            "m = recon_cli.morphable.load_default_model(); m.decode(*(__import__('numpy').zeros((1, n)) "
            "for n in (m.n_id, m.n_exp, m.n_tex))); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
