"""Mesh writers: round trips through our readers and through Open3D; atomic output; errors."""

from __future__ import annotations

import numpy as np
import pytest

from recon_cli.errors import InputError
from recon_cli.mesh.readers import read_mesh
from recon_cli.mesh.writers import write_mesh, write_obj, write_ply
from tests.conftest import make_random_model


@pytest.fixture
def mesh():
    m = make_random_model(n_verts=64)
    rng = np.random.default_rng(0)
    return m.mean_shape.astype(np.float64), m.triangles, rng.uniform(0, 1, (m.n_verts, 3))


@pytest.mark.parametrize("suffix", [".obj", ".ply"])
def test_round_trip(tmp_path, mesh, suffix):
    verts, faces, colors = mesh
    path = write_mesh(tmp_path / f"face{suffix}", verts, faces, colors)
    v, f, c = read_mesh(path)
    np.testing.assert_allclose(v, verts, atol=1e-6)
    np.testing.assert_array_equal(f, faces)
    tol = 1 / 255 / 2 + 1e-9 if suffix == ".ply" else 5e-5  # uchar vs 4 decimals
    np.testing.assert_allclose(c, colors, atol=tol)
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary files left behind"


@pytest.mark.parametrize("suffix", [".obj", ".ply"])
def test_open3d_reads_our_files(tmp_path, mesh, suffix):
    o3d = pytest.importorskip("open3d")
    verts, faces, colors = mesh
    path = write_mesh(tmp_path / f"face{suffix}", verts, faces, colors)
    m = o3d.io.read_triangle_mesh(str(path))
    v, t, c = np.asarray(m.vertices), np.asarray(m.triangles), np.asarray(m.vertex_colors)
    assert len(t) == len(faces)
    # Open3D's OBJ loader may renumber vertices: compare triangle corners, in order
    np.testing.assert_allclose(v[t], verts[faces], atol=1e-6)
    np.testing.assert_allclose(c[t], colors[faces], atol=1 / 255)


def test_without_colours_and_ply_header(tmp_path, mesh):
    verts, faces, _ = mesh
    p = write_ply(tmp_path / "a.ply", verts, faces)
    head = p.read_bytes().split(b"end_header\n")[0].decode()
    assert "format binary_little_endian 1.0" in head and "red" not in head
    assert f"element vertex {len(verts)}" in head and f"element face {len(faces)}" in head
    assert len(p.read_bytes()) == len(head) + len("end_header\n") + 12 * len(verts) + 13 * len(faces)
    v, f, c = read_mesh(write_obj(tmp_path / "a.obj", verts, faces))
    assert c is None and len(v) == len(verts) and len(f) == len(faces)


def test_colours_are_clipped_and_bad_input_rejected(tmp_path, mesh):
    verts, faces, colors = mesh
    colors = colors.copy()
    colors[0] = [-1.0, 2.0, 0.5]
    _, _, c = read_mesh(write_mesh(tmp_path / "c.ply", verts, faces, colors))
    np.testing.assert_allclose(c[0], [0.0, 1.0, 128 / 255])
    with pytest.raises(InputError, match=r"unknown extension '\.stl'"):
        write_mesh(tmp_path / "x.stl", verts, faces)
    with pytest.raises(ValueError, match="faces index vertices outside"):
        write_mesh(tmp_path / "x.obj", verts, faces + len(verts))
    with pytest.raises(ValueError, match="colors must be"):
        write_mesh(tmp_path / "x.obj", verts, faces, colors[:3])
    assert not (tmp_path / "x.obj").exists()


def test_failed_write_keeps_previous_file(tmp_path, mesh):
    verts, faces, colors = mesh
    p = write_mesh(tmp_path / "keep.obj", verts, faces, colors)
    before = p.read_bytes()
    bad = verts.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_mesh(p, bad, faces, colors)
    assert p.read_bytes() == before


def test_unwritable_destination_is_a_clear_error(tmp_path):
    from recon_cli.atomic import atomic_path, atomic_write_text

    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="cannot write .*afile/out.json"):
        atomic_write_text(tmp_path / "afile" / "out.json", "{}")
    with pytest.raises(InputError, match="writable folder"):
        with atomic_path(tmp_path / "afile" / "sub" / "p.npz"):
            pass
    atomic_write_text(tmp_path / "new" / "ok.json", "{}")  # missing folders are still created
    assert (tmp_path / "new" / "ok.json").read_text() == "{}"
