"""`recon model …` through the real Typer app (CliRunner) and the console entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from recon_cli.cli.app import app
from recon_cli.mesh.readers import read_mesh
from recon_cli.morphable import load_default_model
from tests.conftest import make_random_model

runner = CliRunner()


def test_info_json_on_default(tmp_path):
    out = tmp_path / "info.json"
    r = runner.invoke(app, ["model", "info", "--json", str(out)])
    assert r.exit_code == 0, r.output
    info = json.loads(out.read_text())
    assert info["id_dims"] >= 80 and info["exp_dims"] >= 50 and info["tex_dims"] == 80 and info["landmarks"] == 68
    assert info["name"] == "ict-facekit" and info["hash"] == load_default_model().content_hash()
    assert "vertices" in r.output and "ict-facekit" in r.output
    r = runner.invoke(app, ["model", "info", "--json", "-"])
    assert json.loads(r.output)["tex_dims"] == 80


def test_info_on_a_file_and_errors(tmp_path):
    p = make_random_model().save(tmp_path / "rand.npz")
    r = runner.invoke(app, ["model", "info", str(p), "--json", str(tmp_path / "i.json")])
    assert r.exit_code == 0 and json.loads((tmp_path / "i.json").read_text())["name"] == "random"
    # the console entry point prints a user error without a traceback
    r = subprocess.run([sys.executable, "-m", "recon_cli", "model", "info", str(tmp_path / "missing.npz")],
                       capture_output=True, text=True)
    err = " ".join(r.stderr.split())
    assert r.returncode == 2 and "morphable model file not found" in err and "Traceback" not in err


@pytest.mark.parametrize("suffix", [".obj", ".ply"])
def test_sample_writes_a_face(tmp_path, suffix):
    out = tmp_path / f"face{suffix}"
    r = runner.invoke(app, ["model", "sample", "--out", str(out), "--seed", "3", "--json", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    v, f, c = read_mesh(out)
    m = load_default_model()
    assert v.shape == (m.n_verts, 3) and len(f) == m.n_faces and c is not None
    coeffs = json.loads((tmp_path / "s.json").read_text())
    want_v, _ = m.decode(np.array(coeffs["id"])[None], np.array(coeffs["exp"])[None], np.array(coeffs["tex"])[None])
    np.testing.assert_allclose(v, want_v[0], atol=2e-6)
    assert min(coeffs["exp"]) >= 0 and max(coeffs["exp"]) <= 1  # ICT blendshape weights
    assert not np.allclose(v, m.mean_shape, atol=1e-4)
    r2 = runner.invoke(app, ["model", "sample", "--out", str(tmp_path / f"b{suffix}"), "--seed", "4"])
    assert r2.exit_code == 0 and not np.allclose(read_mesh(tmp_path / f"b{suffix}")[0], v)


def test_sample_neutral_and_bad_extension(tmp_path):
    out = tmp_path / "n.obj"
    assert runner.invoke(app, ["model", "sample", "--out", str(out), "--neutral"]).exit_code == 0
    np.testing.assert_allclose(read_mesh(out)[0], load_default_model().mean_shape, atol=1e-6)
    r = subprocess.run([sys.executable, "-m", "recon_cli", "model", "sample", "--out", str(tmp_path / "x.stl")],
                       capture_output=True, text=True)
    err = " ".join(r.stderr.split())  # rich wraps long lines
    assert r.returncode == 2 and "unknown extension '.stl'" in err and "Traceback" not in err


def test_import_commands_report_bad_sources(tmp_path):
    for cmd in ("import-ict", "import-bfm"):
        r = subprocess.run([sys.executable, "-m", "recon_cli", "model", cmd, str(tmp_path / "nope"), "--out",
                            str(tmp_path / "m.npz")], capture_output=True, text=True)
        err = " ".join(r.stderr.split())
        assert r.returncode == 2 and "not found" in err and "fix:" in err, err
        assert not (tmp_path / "m.npz").exists()
