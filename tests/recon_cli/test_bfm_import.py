"""Basel Face Model importer on synthetic files of exactly the real layout.

The bases are random (the BFM cannot be shipped) but every key, shape and dtype is the real
one, and the topology is real: the triangles, keypoints and index files are Deep3DFaceRecon's
own (``../shared/data/bfm-topology``). The synthetic mean face is a Tutte embedding of the real
front-face triangulation lifted onto a face-sized cap, oriented by the real keypoints (jaw 0
image-left, brows above the mouth), so the winding check runs on BFM's real triangle order.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.io import loadmat, savemat
from scipy.sparse.linalg import spsolve

from recon_cli.errors import InputError
from recon_cli.mesh.topology import boundary_edges, face_normals
from recon_cli.morphable import MorphableModel
from recon_cli.morphable.bfm import N_BFM, N_EXP, build_bfm_model, import_bfm

K_ID, K_EXP_FILE, K_TEX = 80, 79, 80  # raw files: 80 of BFM's 199 columns keep the test fast


@pytest.fixture(scope="module")
def topo(shared_data):
    d = shared_data / "bfm-topology"
    info = loadmat(d / "facemodel_info.mat")
    return {"dir": d, "info": info, "tri": info["tri"].astype(np.int64) - 1,
            "kp": info["keypoints"].reshape(-1).astype(np.int64) - 1,
            "front_idx": loadmat(d / "BFM_front_idx.mat")["idx"].reshape(-1).astype(np.int64) - 1,
            "trim": loadmat(d / "BFM_exp_idx.mat")["trimIndex"].reshape(-1).astype(np.int64) - 1,
            "std_exp": np.loadtxt(d / "std_exp.txt")}


def _outer_loop(tri: np.ndarray) -> np.ndarray:
    be = boundary_edges(tri)
    nbr: dict[int, list[int]] = {}
    for a, b in be:
        nbr.setdefault(int(a), []).append(int(b))
        nbr.setdefault(int(b), []).append(int(a))
    loops, seen = [], set()
    for s in sorted(nbr):
        if s in seen:
            continue
        loop, prev, cur = [s], -1, s
        seen.add(s)
        while True:
            nxt = next((n for n in nbr[cur] if n != prev and n not in seen), None)
            if nxt is None:
                break
            loop.append(nxt)
            seen.add(nxt)
            prev, cur = cur, nxt
        loops.append(loop)
    return np.array(max(loops, key=len))


@pytest.fixture(scope="module")
def front_geometry(topo):
    """Mean face ``(V, 3)`` in decimetres (Deep3DFaceRecon's units), frontal, x image-right."""
    tri, kp = topo["tri"], topo["kp"]
    V = int(tri.max()) + 1
    loop = _outer_loop(tri)
    ang = np.linspace(0, 2 * np.pi, len(loop), endpoint=False)
    i = np.concatenate([tri[:, 0], tri[:, 1], tri[:, 2], tri[:, 1], tri[:, 2], tri[:, 0]])
    j = np.concatenate([tri[:, 1], tri[:, 2], tri[:, 0], tri[:, 0], tri[:, 1], tri[:, 2]])
    A = sp.csr_matrix((np.ones(len(i)), (i, j)), shape=(V, V))
    A.data[:] = 1
    L = sp.diags(np.asarray(A.sum(1)).ravel()) - A
    fixed = np.zeros(V, bool)
    fixed[loop] = True
    free = ~fixed
    uv = np.zeros((V, 2))
    uv[loop] = np.stack([np.cos(ang), np.sin(ang)], 1)
    rhs = -L[free][:, fixed] @ uv[fixed]
    uv[free] = np.stack([spsolve(L[free][:, free].tocsc(), rhs[:, k]) for k in range(2)], 1)
    up = uv[kp[17:27]].mean(0) - uv[kp[48:68]].mean(0)  # rotate: brows above the mouth
    a = np.arctan2(up[0], up[1])
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    uv = uv @ R.T
    if uv[kp[0], 0] > uv[kp[16], 0]:  # mirror: jaw 0 on the image left
        uv[:, 0] *= -1
    z = np.sqrt(np.clip(1 - (uv**2).sum(1), 0, None))
    return np.stack([0.75 * uv[:, 0], 0.95 * uv[:, 1], 0.45 * z + 0.3], 1)  # ~15 cm wide


def _write_front(path, topo, geom, rng, n_id=80, n_exp=64, n_tex=80, **override):
    V = geom.shape[0]
    d = {"meanshape": geom.reshape(1, -1).astype(np.float32),
         "idBase": rng.normal(0, 1e-3, (3 * V, n_id)).astype(np.float32),
         "exBase": rng.normal(0, 1e-3, (3 * V, n_exp)).astype(np.float32),
         "meantex": rng.uniform(80, 200, (1, 3 * V)).astype(np.float32),
         "texBase": rng.normal(0, 5, (3 * V, n_tex)).astype(np.float32),
         "tri": topo["info"]["tri"], "point_buf": topo["info"]["point_buf"], "keypoints": topo["info"]["keypoints"],
         "tri_mask2": topo["info"]["tri_mask2"], "frontmask2_idx": topo["info"]["frontmask2_idx"],
         "skinmask": topo["info"]["skinmask"]}
    d.update(override)
    for k in [k for k, v in d.items() if v is None]:
        del d[k]
    savemat(path, d)
    return d


def _write_raw(folder, topo, geom, rng):
    """01_MorphableModel.mat, Exp_Pca.bin (+ copies of the real index files) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    index_shape = topo["trim"][topo["front_idx"]]
    shape_mu = np.tile((geom.mean(0) * 1e5).astype(np.float32), (N_BFM, 1))
    shape_mu[index_shape] = geom * 1e5  # decimetres → micrometres
    n = 3 * N_BFM
    raw = {"shapeMU": shape_mu.reshape(n, 1),
           "shapePC": (rng.standard_normal((n, K_ID), dtype=np.float32) / np.sqrt(n)).astype(np.float32),
           "shapeEV": np.linspace(9e5, 1e5, K_ID, dtype=np.float32).reshape(-1, 1) * 1e-1,
           "texMU": rng.uniform(60, 200, (n, 1)).astype(np.float32),
           "texPC": (rng.standard_normal((n, K_TEX), dtype=np.float32) / np.sqrt(n)).astype(np.float32),
           "texEV": np.linspace(4e3, 5e2, K_TEX, dtype=np.float32).reshape(-1, 1)}
    savemat(folder / "01_MorphableModel.mat", raw)
    exp_mu = np.zeros(3 * N_EXP, np.float32)
    exp_pc = (rng.standard_normal((K_EXP_FILE, 3 * N_EXP), dtype=np.float32) / np.sqrt(3 * N_EXP)).astype(np.float32)
    with open(folder / "Exp_Pca.bin", "wb") as f:
        f.write(np.array([K_EXP_FILE], "<i4").tobytes() + exp_mu.tobytes() + exp_pc.tobytes())
    for name in ("BFM_front_idx.mat", "BFM_exp_idx.mat", "facemodel_info.mat", "std_exp.txt"):
        (folder / name).write_bytes((topo["dir"] / name).read_bytes())
    return raw, exp_pc.T


def _transfer_reference(raw, exp_pc, topo):
    """Deep3DFaceRecon's transferBFM09, written out independently: decimetres, 0–255."""
    index_exp = topo["front_idx"]
    index_shape = topo["trim"][index_exp]
    id_b = (raw["shapePC"] * raw["shapeEV"].reshape(1, -1) / 1e5)[:, :80]
    ex_b = (exp_pc * topo["std_exp"].reshape(1, -1) / 1e5)[:, :64]
    tex_b = (raw["texPC"] * raw["texEV"].reshape(1, -1))[:, :80]
    pick = lambda b, idx: b.reshape(-1, 3, b.shape[1])[idx].reshape(-1, b.shape[1])  # noqa: E731
    return {"meanshape": (raw["shapeMU"].reshape(-1, 3) / 1e5)[index_shape].reshape(1, -1),
            "meantex": raw["texMU"].reshape(-1, 3)[index_shape].reshape(1, -1),
            "idBase": pick(id_b, index_shape), "exBase": pick(ex_b, index_exp), "texBase": pick(tex_b, index_shape)}


def test_front_mat_conversion(tmp_path, topo, front_geometry):
    rng = np.random.default_rng(0)
    d = _write_front(tmp_path / "BFM_model_front.mat", topo, front_geometry, rng)
    m = import_bfm(tmp_path / "BFM_model_front.mat", tmp_path / "bfm.npz")
    V = front_geometry.shape[0]
    assert (m.n_verts, m.n_faces, m.n_id, m.n_exp, m.n_tex) == (V, 70789, 80, 64, 80)
    mean_m = d["meanshape"].reshape(V, 3).astype(np.float64) * 0.1
    np.testing.assert_allclose(m.mean_shape, mean_m - mean_m.mean(0), atol=1e-6)
    np.testing.assert_allclose(m.mean_albedo, d["meantex"].reshape(V, 3) / 255.0, atol=1e-6)
    np.testing.assert_allclose(m.id_basis[3], d["idBase"][:, 3].reshape(V, 3) * 0.1, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(m.tex_basis[7], d["texBase"][:, 7].reshape(V, 3) / 255.0, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(m.landmarks68, topo["kp"])
    # BFM's real triangle order is already counter-clockwise from outside on a frontal face.
    assert m.meta["triangles_flipped"] is False
    np.testing.assert_array_equal(m.triangles, topo["tri"])
    assert face_normals(m.mean_shape, m.triangles, normalize=False).sum(0)[2] > 0
    lm = m.mean_shape[m.landmarks68]
    assert lm[0, 0] < 0 < lm[16, 0] and lm[36, 0] < lm[45, 0] and lm[48, 0] < lm[54, 0]
    m2 = MorphableModel.load(tmp_path / "bfm.npz")
    assert m2.content_hash() == m.content_hash() and m2.name == "bfm09" and "Basel" in m2.licence


@pytest.mark.slow  # writes ~120 MB of realistic raw BFM files (a few seconds)
def test_raw_files_match_transferBFM09(tmp_path, topo, front_geometry):
    rng = np.random.default_rng(1)
    raw, exp_pc = _write_raw(tmp_path / "BFM", topo, front_geometry, rng)
    m_raw = build_bfm_model(tmp_path / "BFM")
    ref = _transfer_reference(raw, exp_pc, topo)
    _write_front(tmp_path / "ref_front.mat", topo, front_geometry, rng, **ref)
    m_ref = build_bfm_model(tmp_path / "ref_front.mat")
    for name in ("mean_shape", "id_basis", "exp_basis", "mean_albedo", "tex_basis"):
        a, b = getattr(m_raw, name), getattr(m_ref, name)
        # float32 storage in the reference file: ~0.4 µm on the mean shape, ~1e-6 relative on bases
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 if name == "mean_shape" else 1e-5 * np.abs(b).max(),
                                   err_msg=name)
    np.testing.assert_array_equal(m_raw.triangles, m_ref.triangles)
    assert m_raw.meta["importer"] == "bfm09-raw" and (m_raw.n_id, m_raw.n_exp, m_raw.n_tex) == (80, 64, 80)


def test_front_mat_errors_name_file_and_key(tmp_path, topo, front_geometry):
    rng = np.random.default_rng(2)
    p = tmp_path / "BFM_model_front.mat"
    _write_front(p, topo, front_geometry, rng, n_id=4, n_exp=4, n_tex=4, idBase=None)
    with pytest.raises(InputError, match=r"BFM_model_front\.mat: key 'idBase' is missing") as e:
        build_bfm_model(p)
    assert "University of Basel" in str(e.value)
    _write_front(p, topo, front_geometry, rng, n_id=4, n_exp=4, n_tex=4)
    with pytest.raises(InputError, match=r"'idBase' has shape \(107127, 4\), expected \(107127, >= 80\)"):
        build_bfm_model(p)
    small = dict(n_id=4, n_exp=4, n_tex=4)  # small bases keep the remaining cases fast
    _write_front(p, topo, front_geometry, rng, keypoints=np.arange(1, 60, dtype=np.float32)[None], **small)
    with pytest.raises(InputError, match="'keypoints' has shape"):
        build_bfm_model(p, **small)
    bad_tri = topo["info"]["tri"].copy()
    bad_tri[0, 0] = 99999
    _write_front(p, topo, front_geometry, rng, tri=bad_tri, **small)
    with pytest.raises(InputError, match=r"'tri' has indices in \[1, 99999\]"):
        build_bfm_model(p, **small)
    _write_front(p, topo, front_geometry * 100, rng, **small)  # centimetres-sized numbers: wrong units
    with pytest.raises(InputError, match="wide after unit conversion"):
        build_bfm_model(p, **small)
    flipped_tri = topo["info"]["tri"][:, [0, 2, 1]]  # a file with the opposite winding gets flipped back
    _write_front(p, topo, front_geometry, rng, tri=flipped_tri, **small)
    m = build_bfm_model(p, **small)
    assert m.meta["triangles_flipped"] is True and face_normals(m.mean_shape, m.triangles, False).sum(0)[2] > 0
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"this is not matlab")
    with pytest.raises(InputError, match="junk.mat: not a readable MATLAB"):
        build_bfm_model(junk)
    with pytest.raises(InputError, match="BFM source not found"):
        build_bfm_model(tmp_path / "nope.mat")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="neither BFM_model_front.mat nor 01_MorphableModel.mat"):
        build_bfm_model(tmp_path / "empty")


def test_raw_errors(tmp_path, topo):
    folder = tmp_path / "BFM"
    folder.mkdir()
    savemat(folder / "01_MorphableModel.mat", {"shapeMU": np.zeros((10, 1), np.float32)})
    with pytest.raises(InputError, match=r"01_MorphableModel.mat: 'shapeMU' has shape \(10, 1\), expected \(160470, 1\)"):
        build_bfm_model(folder)
    # Exp_Pca.bin: header says 79 modes but the file is truncated.
    from recon_cli.morphable.bfm import read_exp_pca

    (folder / "Exp_Pca.bin").write_bytes(np.array([79], "<i4").tobytes() + np.zeros(1000, "<f4").tobytes())
    with pytest.raises(InputError, match=r"Exp_Pca.bin: 4004 bytes with a header of 79 modes"):
        read_exp_pca(folder / "Exp_Pca.bin")
    with pytest.raises(InputError, match="BFM file not found: .*missing.bin"):
        read_exp_pca(folder / "missing.bin")
