"""The edge inference path runs without torch.

Each case runs in a subprocess whose ``sitecustomize`` puts a ``sys.meta_path`` finder in front
of every other that refuses ``torch`` and ``torch.*`` (ModuleNotFoundError, as on a device
without torch). Cases: the library path (front-end alignment → ONNX Runtime encoder → NumPy
morphable-model decode → camera projection, compared with PyTorch in this process) and the
``recon run --backend onnx`` command. Add further torch-free entry points to ``CASES``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]

BLOCKER = textwrap.dedent("""
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked: torch-free test)", name=name)
            return None
    sys.meta_path.insert(0, _NoTorch())
""")

LIBRARY_CASE = textwrap.dedent("""
    import json, sys
    import numpy as np
    import cv2
    from recon_cli.backends import load_backend, check_model_match, layout_from_meta
    from recon_cli.face.align import align_face
    from recon_cli.morphable import load_default_model
    from recon_cli.render.camera import CameraConfig, project, transform

    onnx_path, image, pts = sys.argv[1], sys.argv[2], sys.argv[3]
    try:
        import torch  # noqa: F401
        raise SystemExit("torch imported: the blocker did not work")
    except ModuleNotFoundError:
        pass
    rgb = cv2.cvtColor(cv2.imread(image), cv2.COLOR_BGR2RGB)
    crop = align_face(rgb, np.loadtxt(pts)[:5]).crop
    x = (crop.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    enc = load_backend(onnx_path, threads=1)
    model = load_default_model()
    check_model_match(enc.meta, model)
    parts = layout_from_meta(enc.meta).split(enc(x))
    verts = model.shape(parts["id"], parts["exp"])
    uv, _ = project(transform(verts, parts["angles"], parts["trans"]), CameraConfig())
    lm = uv[:, model.landmarks68]
    assert "torch" not in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))
    print(json.dumps({"backend": enc.name, "landmarks": lm[0].tolist(), "crop_mean": float(x.mean())}))
""")


def _run(args: list[str], tmp: Path, **kw) -> subprocess.CompletedProcess:
    (tmp / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp), str(REPO)]), "PYTHONNOUSERSITE": "1"}
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp, timeout=300, **kw)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, shared_data):
    """An exported edge encoder (untrained, random head) and its torch twin."""
    from export.onnx_export import export_onnx
    from recon_cli.morphable import load_default_model
    from tests.export.conftest import make_encoder

    model = load_default_model()
    enc, meta = make_encoder("mobilenet_v3_small", model)
    out = tmp_path_factory.mktemp("torchfree") / "edge.onnx"
    export_onnx(enc, meta, out)
    return out, enc, model


def test_blocker_blocks_torch(tmp_path):
    r = _run([sys.executable, "-c", "import torch"], tmp_path)
    assert r.returncode != 0 and "blocked: torch-free test" in r.stderr


def test_library_path_without_torch(tmp_path, exported, shared_data):
    import torch

    from export.parity import landmarks_px
    from recon_cli.backends.base import layout_from_meta
    from recon_cli.render.camera import CameraConfig

    onnx_path, enc, model = exported
    image = shared_data / "faces" / "deep3d-examples" / "000002.jpg"
    r = _run([sys.executable, "-c", LIBRARY_CASE, str(onnx_path), str(image), str(image.with_suffix(".txt"))], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["backend"] == "onnx-fp32"

    # same crop through the PyTorch encoder in this process
    import cv2

    from recon_cli.face.align import align_face

    rgb = cv2.cvtColor(cv2.imread(str(image)), cv2.COLOR_BGR2RGB)
    crop = align_face(rgb, np.loadtxt(image.with_suffix(".txt"))[:5]).crop
    x = (crop.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    assert got["crop_mean"] == pytest.approx(float(x.mean()), abs=1e-6)
    with torch.no_grad():
        ref = enc(torch.from_numpy(x)).numpy()
    lm_ref = landmarks_px(ref, layout_from_meta({"layout": enc.layout.to_dict()}), model, CameraConfig())[0]
    lm = np.asarray(got["landmarks"])
    assert np.abs(lm - lm_ref).max() < 0.05
    assert np.ptp(lm[:, 0]) > 50  # a face-sized landmark set, not a degenerate one


def test_recon_run_onnx_without_torch(tmp_path, exported, shared_data):
    """`recon run IMAGE --backend onnx --weights E.onnx` end to end with torch blocked."""
    onnx_path, _, _ = exported
    image = shared_data / "faces" / "deep3d-examples" / "000002.jpg"
    summary = tmp_path / "summary.json"
    code = "import sys; sys.argv = ['recon'] + sys.argv[1:]; from recon_cli.cli.app import main; main()"
    r = _run([sys.executable, "-c", code, "run", str(image), "--backend", "onnx", "--weights", str(onnx_path),
              "--no-view", "--json", str(summary)], tmp_path)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    s = json.loads(summary.read_text())
    assert s["backend"] == "onnx-fp32" and s["weights"] == str(onnx_path)
    assert s["frames"] == 1 and s["frames_with_faces"] == 1 and s["faces"] == 1
