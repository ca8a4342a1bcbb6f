"""`recon run` end to end: headless runs with every output, truncated input, bad sources, Ctrl-C,
and the torch-free ONNX path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from recon_cli.cli.app import app
from recon_cli.errors import InputError

REPO = Path(__file__).resolve().parents[2]
ARCH = "mobilenet_v3_small"  # untrained fallback encoder: fast to build; geometry is what is tested
# torch runs use 1 thread: on a shared 2-core CI machine 2 OpenMP threads stall each other


def _recon(args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "recon_cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd or REPO, timeout=300)


def _count_frames(path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_headless_run_with_all_outputs(shared_data, tmp_path):
    video = shared_data / "videos" / "d11.mp4"
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(video), "--no-view", "--max-frames", "6", "--arch", ARCH,
                                   "--backend", "torch", "--threads", "1", "--save-video", str(out / "overlay.mp4"),
                                   "--save-coeffs", str(out / "coeffs.jsonl"), "--save-meshes", str(out / "meshes"),
                                   "--json", str(out / "summary.json")])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 6 and summary["stopped"] == "max_frames"
    from recon_cli.pipeline.encoder_source import default_weights

    shipped = default_weights("torch")
    if shipped is None:
        assert summary["trained"] is False and "UNTRAINED" in summary["weights"]
    else:  # the shipped default encoder is used, and the summary says which file
        assert summary["trained"] is True and str(shipped) in summary["weights"]
    assert summary["fps"] > 0 and {"landmarks", "encoder", "mesh", "render", "write"} <= set(summary["ms_per_frame"])
    # every frame accounted for in the JSONL, in order; faces carry coefficients, pose and landmarks
    lines = [json.loads(line) for line in (out / "coeffs.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(6))
    assert sum(bool(r["faces"]) for r in lines) == summary["frames_with_faces"] >= 5
    face = next(r["faces"][0] for r in lines if r["faces"])
    assert set(face["coeffs"]) == {"id", "exp", "tex", "angles", "light", "trans"}
    lm = np.array(face["lm68"])
    assert lm.shape == (68, 2) and (lm > 0).all() and (lm < 512).all()  # inside the 512×512 frame
    # overlay video readable with the same number of frames and the frame size
    assert _count_frames(out / "overlay.mp4") == 6
    cap = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (512, 512)
    cap.release()
    # one mesh per frame with a face, readable, in metres in front of the camera
    meshes = sorted((out / "meshes").glob("*.ply"))
    assert len(meshes) == summary["faces"]
    from recon_cli.mesh.readers import read_mesh

    m = read_mesh(meshes[0])
    verts = m[0] if isinstance(m, tuple) else m.verts
    assert np.all(verts[:, 2] < -0.5)
    assert not list(out.glob(".*tmp*"))  # no temporary files left behind


def test_npz_coefficients_and_frames_without_faces(shared_data, tmp_path):
    # a folder with a face photo and a blank image: the blank is recorded with no faces
    photo = sorted((shared_data / "faces" / "portraits").iterdir())[0]
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(photo.read_bytes())
    cv2.imwrite(str(folder / "b_blank.png"), np.full((240, 320, 3), 127, np.uint8))
    res = CliRunner().invoke(app, ["run", str(folder), "--no-view", "--arch", ARCH, "--backend", "torch", "--threads", "1",
                                   "--save-coeffs",
                                   str(tmp_path / "c.npz"), "--json", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["frames"] == 2 and s["frames_with_faces"] == 1 and s["frames_without_faces"] == 1
    assert s["smoothing"] is False  # separate photos are not smoothed across
    z = np.load(tmp_path / "c.npz")
    assert z["n_faces"].tolist() == [1, 0] and z["coeffs"].shape[0] == 1 and z["lm68"].shape == (1, 68, 2)
    assert json.loads(str(z["layout"]))["n_exp"] > 0


def test_truncated_video_ends_cleanly_with_a_summary(shared_data, tmp_path):
    data = (shared_data / "videos" / "s18.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:60_000])  # the index + the first ~8 frames
    res = CliRunner().invoke(app, ["run", str(cut), "--no-view", "--arch", ARCH, "--backend", "torch", "--threads", "1",
                                   "--save-coeffs",
                                   str(tmp_path / "c.jsonl"), "--save-video", str(tmp_path / "o.mp4"),
                                   "--json", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["ended_early"] is True and s["stopped"] == "end of input"
    assert 0 < s["frames"] == s["source"]["frames_read"] < s["source"]["frames_expected"]
    assert len((tmp_path / "c.jsonl").read_text().splitlines()) == s["frames"]
    assert _count_frames(tmp_path / "o.mp4") == s["frames"]


def test_unreadable_source_is_a_clear_error(tmp_path):
    bad = tmp_path / "clip.mp4"
    bad.write_text("this is not a video")
    res = _recon(["run", str(bad), "--no-view"])
    assert res.returncode == 2
    assert "cannot open video" in res.stderr and "clip.mp4" in res.stderr and "fix:" in res.stderr
    assert "Traceback" not in res.stderr
    res = _recon(["run", str(tmp_path / "nope.mp4"), "--no-view"])
    assert res.returncode == 2 and "source not found" in res.stderr


def test_interrupt_finishes_every_output(shared_data, tmp_path):
    """Ctrl-C mid-run: the video is released and playable, the JSONL holds every processed frame
    (the callback raising KeyboardInterrupt on the main thread is exactly what Ctrl-C does)."""
    from recon_cli.face.mediapipe_mesh import FaceLandmarker, LandmarkerConfig
    from recon_cli.morphable import load_default_model
    from recon_cli.pipeline.encoder_source import untrained_torch
    from recon_cli.pipeline.reconstruct import Reconstructor
    from recon_cli.pipeline.run import RunOptions, run_pipeline
    from recon_cli.pipeline.sources import open_source

    model = load_default_model()
    recon = Reconstructor(untrained_torch(ARCH, model, threads=1), model)
    opts = RunOptions(save_video=tmp_path / "o.mp4", save_coeffs=tmp_path / "c.jsonl", render=True)

    def ctrl_c(stats):
        if stats["frame"] == 3:
            raise KeyboardInterrupt

    with open_source(shared_data / "videos" / "d11.mp4") as src, FaceLandmarker(LandmarkerConfig(static=False)) as lm:
        s = run_pipeline(src, recon, lm, opts, on_frame=ctrl_c)
    # the frames already in flight (decoded/inferred, at most the two queues + one each) are finished
    assert s["stopped"] == "interrupted (Ctrl-C)" and 3 <= s["frames"] <= 3 + 6
    assert s["frames"] < s["source"]["frames_expected"] and s["ended_early"] is False
    assert _count_frames(tmp_path / "o.mp4") == s["frames"]
    lines = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(s["frames"]))
    assert not list(tmp_path.glob(".*tmp*"))


def test_bad_output_paths_are_input_errors(tmp_path):
    from recon_cli.pipeline.outputs import RunOutputs

    with pytest.raises(InputError):
        RunOutputs(coeffs=tmp_path / "c.csv")
    with pytest.raises(InputError):
        RunOutputs(video=tmp_path / "v.gif")


@pytest.fixture(scope="module")
def untrained_onnx(tmp_path_factory):
    """An untrained edge encoder exported to ONNX once (through the CLI's own exporter helper)."""
    from recon_cli.cli.run_cmd import _untrained_onnx
    from recon_cli.morphable import load_default_model

    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(cache)
    try:
        return _untrained_onnx(ARCH, load_default_model())
    finally:
        if old is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = old


BLOCK_TORCH = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked: the ONNX runtime path must not import it")
sys.meta_path.insert(0, _Block())
from recon_cli.cli.app import main
main(sys.argv[1:])
"""


def test_onnx_run_is_torch_free(untrained_onnx, tmp_path):
    sample = REPO / "samples" / "face.mp4"
    res = subprocess.run([sys.executable, "-c", BLOCK_TORCH, "run", str(sample), "--no-view", "--backend", "onnx",
                          "--weights", str(untrained_onnx), "--max-frames", "5", "--threads", "2",
                          "--save-video", str(tmp_path / "o.mp4"), "--json", str(tmp_path / "s.json")],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["backend"].startswith("onnx") and s["frames"] == s["frames_with_faces"] == 5
    assert _count_frames(tmp_path / "o.mp4") == 5


def test_bench_run_reports_fps_and_stages(untrained_onnx, tmp_path):
    res = CliRunner().invoke(app, ["bench", "run", str(REPO / "samples" / "face.mp4"), "--weights", str(untrained_onnx),
                                   "--max-frames", "8", "--warmup", "2", "--threads", "2",
                                   "--json", str(tmp_path / "b.json")])
    assert res.exit_code == 0, res.output
    b = json.loads((tmp_path / "b.json").read_text())
    row = b["rows"][0]
    assert row["frames"] == 8 and row["faces"] == 8 and row["fps"] > 0 and row["size"] == "640x480"
    for stage in ("landmarks", "encoder", "mesh", "render"):
        assert row[f"{stage}_ms"] > 0
    assert row["threads"] == 2 and b["env"]["threads"] == [2] and row["cpu_ms_per_frame"] > 0
    # the sequential CPU profile attributes the process CPU to stages
    parts = [row[f"{s}_cpu_ms"] for s in ("decode", "landmarks", "align", "encoder", "mesh", "render")]
    assert all(p >= 0 for p in parts) and row["encoder_cpu_ms"] > 0 and row["landmarks_cpu_ms"] > 0
    assert abs(sum(parts) - row["total_cpu_ms"]) < 0.1 and row["cpu_profile_frames"] == 8


def test_sigint_subprocess_closes_outputs_and_writes_summary(shared_data, tmp_path):
    """A real Ctrl-C (SIGINT) to `recon run`: exit 0, the summary says so, outputs are complete."""
    import signal
    import time

    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, "-m", "recon_cli", "run", str(shared_data / "videos" / "d6.mp4"),
                             "--no-view", "--arch", ARCH, "--backend", "torch", "--threads", "1",
                             "--save-video", str(out / "v.mp4"),
                             "--save-coeffs", str(out / "c.jsonl"), "--json", str(out / "s.json")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:  # wait until a few frames are written (the JSONL's temporary file)
            tmp = list(out.glob(".c.*.tmp.jsonl")) if out.exists() else []
            if tmp and len(tmp[0].read_text().splitlines()) >= 3:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    s = json.loads((out / "s.json").read_text())
    assert s["stopped"] == "interrupted (Ctrl-C)" and 3 <= s["frames"] < s["source"]["frames_expected"]
    assert len((out / "c.jsonl").read_text().splitlines()) == s["frames"]
    assert _count_frames(out / "v.mp4") == s["frames"]
    assert not list(out.glob(".*tmp*"))


def test_two_faces_in_one_frame(shared_data, tmp_path):
    """Two people side by side: both reconstructed (one batched encoder call), separate track ids,
    each face's landmarks on its own half of the image."""
    photos = [shared_data / "faces" / "portraits" / n for n in ("s10.jpg", "s11.jpg")]  # BlazeFace finds both
    imgs = [cv2.resize(cv2.imread(str(p)), (400, 400)) for p in photos]
    cv2.imwrite(str(tmp_path / "pair.png"), np.concatenate(imgs, 1))
    res = CliRunner().invoke(app, ["run", str(tmp_path / "pair.png"), "--no-view", "--max-faces", "2", "--arch", ARCH,
                                   "--backend", "torch", "--threads", "1", "--save-coeffs", str(tmp_path / "c.jsonl")])
    assert res.exit_code == 0, res.output
    rec = json.loads((tmp_path / "c.jsonl").read_text())
    faces = rec["faces"]
    assert len(faces) == 2 and {f["track_id"] for f in faces} == {0, 1}
    xs = sorted(np.array(f["lm68"])[:, 0].mean() for f in faces)
    assert xs[0] < 400 < xs[1]


def test_view_mode_headless_falls_back(monkeypatch, tmp_path):
    """view=True without a display: the overlay window is skipped with a warning (OpenCV's Qt
    backend would abort), the Open3D mesh window renders off-screen (EGL) and is updated per frame."""
    from recon_cli.face.mediapipe_mesh import FaceLandmarker, LandmarkerConfig
    from recon_cli.morphable import load_default_model
    from recon_cli.pipeline.encoder_source import untrained_torch
    from recon_cli.pipeline.reconstruct import Reconstructor
    from recon_cli.pipeline.run import RunOptions, run_pipeline
    from recon_cli.pipeline.sources import open_source

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    model = load_default_model()
    recon = Reconstructor(untrained_torch(ARCH, model, threads=1), model)
    with open_source(REPO / "samples" / "face.mp4") as src, FaceLandmarker(LandmarkerConfig(static=False)) as lm:
        s = run_pipeline(src, recon, lm, RunOptions(view=True, max_frames=4))
    assert s["frames"] == 4
    assert s["view"]["overlay_window"] is False and "no display" in s["view"]["warnings"][0]
    if s["view"]["mesh_window"]:  # Open3D with Mesa EGL (CI has it)
        assert s["ms_per_frame"]["view"]["mean"] > 0
