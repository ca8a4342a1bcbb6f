"""The training loop on a tiny real dataset (real `recon prep` output, the shipped ICT model,
the real renderer and losses): the loss decreases, resume is bit-exact, Ctrl-C checkpoints,
bad data and non-finite losses are skipped, logs/grids/checkpoints are written."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from recon_cli.errors import InputError
from tests.train.tiny_dataset import copy_dataset, tiny_dataset
from train.config import load_config
from train.runlog import read_log
from train.trainer import Trainer, train

# small and single-threaded: on a shared 2-core machine one thread is several times faster than two
FAST = ["data.size=64", "model.arch=mobilenet_v3_small", "run.progress=false", "run.deterministic=true",
        "run.threads=1", "losses.enabled=[photo,wing,reg,fre]", "run.val_every=0", "run.grid_every=0"]

# the fitting tests compare first and last batch losses of the same 6 faces: no augmentation there
# (the resume test keeps it on, so augmented runs are also checked to resume bit for bit)
NO_AUG = ["data.aug_shift=0", "data.aug_scale=0", "data.aug_rotate=0", "data.aug_flip=0"]


@pytest.fixture(scope="module")
def tiny(shared_data, tmp_path_factory):
    return tiny_dataset(shared_data, tmp_path_factory.mktemp("h5train"))


def make_cfg(data, project, name, *extra):
    return load_config(None, [f"data.path={data}", f"run.project={project}", f"run.name={name}", *FAST, *extra])


def test_tiny_run_loss_decreases_and_writes_outputs(tiny, tmp_path):
    # full-batch steps on the 6 training faces with every loss (the real MobileFaceNet for `per`)
    cfg = make_cfg(tiny, tmp_path, "fit", "data.val_fraction=0.25", "optim.batch_size=6", "optim.max_steps=8",
                   "run.save_every=4", "run.keep_steps=true", "losses.enabled=[photo,wing,per,reg,fre]", *NO_AUG)
    s = train(cfg)
    assert s["step"] == 8 and not s["interrupted"] and s["skipped_batches"] == 0
    rows = read_log(tmp_path / "fit", "train")
    assert [r["step"] for r in rows] == list(range(1, 9))
    first, last = rows[0], rows[-1]
    assert {"loss/photo", "loss/wing", "loss/per", "loss/reg", "loss/fre", "loss/total"} <= set(first)
    for key in ("loss/total", "loss/photo", "loss/per"):  # the terms that dominate the objective
        assert last[key] < first[key], (key, first[key], last[key])
    assert last["loss/total"] < 0.9 * first["loss/total"]
    # validation record with landmark error at the end
    val = read_log(tmp_path / "fit", "val")
    assert val and val[-1]["step"] == 8 and val[-1]["lm_px"] > 0 and 0 < val[-1]["nme"] < 1
    assert 0 < val[-1]["lm_px_median"] <= val[-1]["lm_px_max"] and val[-1]["lm_px"] <= val[-1]["lm_px_max"]
    assert 0 <= val[-1]["depth_abs_max_m"] < 1.0  # |trans z|, metres (camera at 1 m)
    # outputs
    run = tmp_path / "fit"
    assert (run / "config.yaml").is_file() and (run / "summary.json").is_file() and (run / "train.csv").is_file()
    assert (run / "checkpoints" / "step_0000004.pt").is_file() and (run / "checkpoints" / "last.pt").is_file()
    grid = cv2.imread(str(run / "grid_last.png"))
    assert grid is not None and grid.shape[1] * 8 == grid.shape[0] * 3  # 8 samples × (input | render | landmarks)
    # the checkpoint is a regular encoder checkpoint (inference/export) carrying the training state
    from recon_cli.encoders import load_checkpoint, read_checkpoint

    enc, meta = load_checkpoint(run / "checkpoints" / "last.pt")
    assert meta["arch"] == "mobilenet_v3_small" and meta["size"] == 64 and meta["config"]["optim"]["lr"] == 1e-4
    # the training faces' resolution: their crops' median alignment scale, at the encoder's 64 px input
    from train.data import load_entries, split_ids

    header, entries = load_entries(cfg.data.path)
    idx, _ = split_ids([e["id"] for e in entries], cfg.data.val_fraction, cfg.data.split_seed)
    scales = [float(np.hypot(*np.asarray(json.loads(line)["M"])[:, 0]))
              for line in (Path(cfg.data.path) / "manifest.jsonl").read_text().splitlines()]
    assert meta["source_scale"] == pytest.approx(np.median([scales[i] for i in idx]) * 64 / header["size"], abs=1e-4)
    st = read_checkpoint(run / "checkpoints" / "last.pt")["extra"]["train_state"]
    assert st["step"] == 8 and "optimizer" in st and st["sampler"]["epoch"] >= 1
    # a second run with the same name refuses to overwrite
    with pytest.raises(InputError, match="--resume"):
        Trainer(cfg)


def test_landmark_loss_alone_fits_the_landmarks(tiny, tmp_path):
    """Wing only: gradients reach pose/shape through the projected landmarks."""
    train(make_cfg(tiny, tmp_path, "wing", "data.val_fraction=0.25", "optim.batch_size=6", "optim.max_steps=8",
                   "losses.enabled=[wing]", *NO_AUG))
    rows = read_log(tmp_path / "wing", "train")
    assert set(rows[0]) >= {"loss/wing", "loss/total"} and "loss/photo" not in rows[0]
    assert rows[-1]["loss/wing"] < 0.95 * rows[0]["loss/wing"]


def test_resume_after_ctrl_c_is_bit_exact(tiny, tmp_path):
    """Run A: 5 steps. Run B: SIGINT after step 2 (checkpoint, clean exit), then --resume to 5.
    3 batches per epoch, so the interruption is mid-epoch and the runs cross an epoch boundary."""
    common = ["data.val_fraction=0.25", "optim.batch_size=2", "run.save_every=0"]
    a = train(make_cfg(tiny, tmp_path, "a", "optim.max_steps=5", *common))

    def ctrl_c(t):
        if t.step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    b1 = train(make_cfg(tiny, tmp_path, "b", "optim.max_steps=5", *common), on_step=ctrl_c)
    assert b1["interrupted"] and b1["step"] == 2
    log_b = read_log(tmp_path / "b")
    assert log_b[-1]["event"] == "interrupted"
    b2 = train(make_cfg(tiny, tmp_path, "b", "optim.max_steps=5", "run.resume=true", *common))
    assert b2["step"] == 5 and not b2["interrupted"] and a["epoch"] == b2["epoch"]

    ca = torch.load(tmp_path / "a" / "checkpoints" / "last.pt", weights_only=True)
    cb = torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)
    assert ca["state_dict"].keys() == cb["state_dict"].keys()
    for k in ca["state_dict"]:
        assert torch.equal(ca["state_dict"][k], cb["state_dict"][k]), k
    oa, ob = ca["extra"]["train_state"]["optimizer"]["state"], cb["extra"]["train_state"]["optimizer"]["state"]
    assert all(torch.equal(oa[i]["exp_avg_sq"], ob[i]["exp_avg_sq"]) for i in oa)
    # the resumed log is one history: steps 1..5 once, identical losses to the uninterrupted run
    la, lb = read_log(tmp_path / "a", "train"), read_log(tmp_path / "b", "train")
    assert [r["step"] for r in lb] == [1, 2, 3, 4, 5]
    assert [r["loss/total"] for r in la] == [r["loss/total"] for r in lb]


def test_bad_samples_and_nonfinite_loss_are_skipped(tiny, tmp_path):
    d = copy_dataset(tiny, tmp_path / "data")
    recs = [json.loads(x) for x in (d / "manifest.jsonl").read_text().splitlines()]
    (d / recs[0]["crop"]).write_bytes(b"garbage")
    (d / recs[1]["mask"]).unlink()
    cfg = make_cfg(d, tmp_path, "bad", "data.val_fraction=0", "optim.batch_size=4", "optim.max_steps=3")
    t = Trainer(cfg)
    real, calls = t.objective, {"n": 0}

    class NaNOnce:  # the 2nd training forward returns a NaN loss (as a diverging batch would)
        renderer = real.renderer

        def __call__(self, coeffs, batch):
            losses, out = real(coeffs, batch)
            calls["n"] += 1
            if calls["n"] == 2:
                losses = {**losses, "total": losses["total"] * float("nan")}
            return losses, out

    t.objective = NaNOnce()
    before = {k: v.clone() for k, v in t.encoder.state_dict().items()}
    s = t.fit()
    assert s["step"] == 3 and s["nonfinite_batches"] == 1 and s["skipped_batches"] == 1
    assert s["bad_samples"] == 2
    events = [r for r in read_log(tmp_path / "bad", "event") if r["event"] == "skipped_batch"]
    assert len(events) == 1 and events[0]["reason"] == "nonfinite_loss"
    assert all(torch.isfinite(v).all() for v in t.encoder.state_dict().values() if v.is_floating_point())
    assert any(not torch.equal(before[k], v) for k, v in t.encoder.state_dict().items())


def test_all_bad_data_stops_with_a_clear_error(tiny, tmp_path):
    d = copy_dataset(tiny, tmp_path / "data")
    for p in (d / "crops").iterdir():
        p.write_bytes(b"x")
    cfg = make_cfg(d, tmp_path, "allbad", "data.val_fraction=0", "optim.batch_size=4", "optim.max_steps=3")
    with pytest.raises(InputError, match="no usable batch"):
        Trainer(cfg).fit()


def test_resume_rejects_a_different_architecture(tiny, tmp_path):
    train(make_cfg(tiny, tmp_path, "r", "data.val_fraction=0", "optim.batch_size=8", "optim.max_steps=1"))
    with pytest.raises(InputError, match="arch"):
        Trainer(make_cfg(tiny, tmp_path, "r", "data.val_fraction=0", "optim.batch_size=8", "optim.max_steps=2",
                         "run.resume=true", "model.arch=resnet18"))
    with pytest.raises(InputError, match="does not exist"):
        Trainer(make_cfg(tiny, tmp_path, "never", "run.resume=true"))


def test_precision_choice(caplog):
    from recon_cli.cpu import cpu_has_native_bf16
    from train.distributed import resolve_amp, resolve_device

    cpu = torch.device("cpu")
    assert resolve_amp("auto", cpu) is None and resolve_amp("off", cpu) is None
    assert not caplog.records
    assert resolve_amp("bf16", cpu) == torch.bfloat16
    # emulated bfloat16 (no AVX512-BF16/AMX, e.g. an AVX2-only CPU) is warned about
    warned = any("emulated" in r.getMessage() for r in caplog.records)
    assert warned == (not cpu_has_native_bf16())
    with pytest.raises(InputError, match="CUDA"):
        resolve_amp("fp16", cpu)
    assert resolve_device("cpu") == cpu
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (AMP autocast + GradScaler path)")
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_cuda_amp_run(tiny, tmp_path, amp):
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("GPU without bfloat16")
    cfg = make_cfg(tiny, tmp_path, f"cuda_{amp}", "run.device=cuda", f"run.amp={amp}", "run.deterministic=false",
                   "data.val_fraction=0.25", "optim.batch_size=6", "optim.max_steps=4")
    t = Trainer(cfg)
    assert t.amp_dtype == (torch.bfloat16 if amp == "bf16" else torch.float16)
    assert t.scaler.is_enabled() == (amp == "fp16")
    s = t.fit()
    assert s["step"] == 4 and s["nonfinite_batches"] == 0
    st = torch.load(tmp_path / f"cuda_{amp}" / "checkpoints" / "last.pt", weights_only=True)["extra"]["train_state"]
    assert (st["scaler"] is not None) == (amp == "fp16")


def test_cosine_schedule_and_the_paper_constant():
    from train.trainer import learning_rate

    o = load_config(None, ["optim.lr=1e-3", "optim.lr_schedule=cosine", "optim.lr_final=0.1"]).optim
    lrs = [learning_rate(o, s, 11) for s in range(11)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-4)
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    assert learning_rate(load_config().optim, 5, 11) == 1e-4  # default: constant, the paper's lr
    with pytest.raises(InputError, match="lr_schedule"):
        load_config(None, ["optim.lr_schedule=step"])


def test_init_starts_a_new_run_from_a_checkpoint(tiny, tmp_path):
    common = ["data.val_fraction=0.25", "optim.batch_size=6"]
    train(make_cfg(tiny, tmp_path, "base", "optim.max_steps=2", *common))
    ck = tmp_path / "base" / "checkpoints" / "last.pt"
    t = Trainer(make_cfg(tiny, tmp_path, "ft", f"model.init={ck}", *common))
    saved = torch.load(ck, weights_only=True)["state_dict"]
    assert t.step == 0
    for k, v in t.encoder.state_dict().items():
        assert torch.equal(v, saved[k].to(v.dtype)), k
    with pytest.raises(InputError, match="mobilenet_v3_small encoder"):
        Trainer(make_cfg(tiny, tmp_path, "ft2", f"model.init={ck}", "model.arch=resnet18", *common))


def test_freeze_bn_keeps_the_init_statistics_and_trains_the_rest(tiny, tmp_path):
    """``optim.freeze_bn``: BatchNorm normalises with the --init statistics and leaves them as
    they were, while every layer's weights (BatchNorm's scale included) still train; off, the
    statistics move with the batches."""
    common = ["data.val_fraction=0.25", "optim.batch_size=6", "optim.lr=1e-3"]
    train(make_cfg(tiny, tmp_path, "base", "optim.max_steps=1", *common))
    ck = tmp_path / "base" / "checkpoints" / "last.pt"
    saved = torch.load(ck, weights_only=True)["state_dict"]
    stats = [k for k in saved if k.endswith(("running_mean", "running_var"))]
    scales = [k for k in saved if k.endswith(".weight") and k.replace(".weight", ".running_mean") in saved]
    assert stats and scales
    for name, frozen in (("frozen", True), ("free", False)):
        train(make_cfg(tiny, tmp_path, name, f"model.init={ck}", "optim.max_steps=2",
                       f"optim.freeze_bn={str(frozen).lower()}", *common))
        after = torch.load(tmp_path / name / "checkpoints" / "last.pt", weights_only=True)["state_dict"]
        same = [torch.equal(after[k], saved[k]) for k in stats]
        assert all(same) if frozen else not any(same), name
        assert any(not torch.equal(after[k], saved[k]) for k in scales), name


def test_yaw_term_turns_the_head_towards_the_label(tiny, tmp_path):
    """``losses.w_yaw`` alone on a copy whose manifest carries AFLW yaw labels 40° off every face's
    pose: the predicted yaw moves towards the label and validation reports the error against it."""
    import math

    data = copy_dataset(tiny, tmp_path / "yawdata")
    man = data / "manifest.jsonl"
    rows = [json.loads(ln) for ln in man.read_text().splitlines() if ln.strip()]
    for r in rows:
        r["extra"]["yaw_deg"] = -40.0  # AFLW sign: the model's yaw +40°
    man.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = make_cfg(data, tmp_path, "yaw", "data.val_fraction=0.25", "optim.batch_size=6", "optim.max_steps=6",
                   "losses.enabled=[reg]", "losses.w_yaw=1.0", "losses.yaw_margin_deg=5", "optim.lr=3e-3", "run.val_every=100", *NO_AUG)
    train(cfg)
    log = read_log(tmp_path / "yaw", "train")
    assert log[-1]["loss/yaw"] < log[0]["loss/yaw"] and log[0]["loss/yaw"] > math.radians(20)
    val = read_log(tmp_path / "yaw", "val")
    assert [v["step"] for v in val] == [0, 6] and "yaw_err_deg_60" not in val[-1]  # no |label| > 60° here
    assert val[-1]["yaw_err_deg"] < val[0]["yaw_err_deg"]


def test_depth_term_pulls_a_runaway_face_back(tiny, tmp_path):
    """``losses.w_depth`` alone on an encoder whose head puts every face 0.5 m towards the camera
    (a runaway, as v1.5 on faces turned past 90°): the hinge falls during training and
    validation's worst |trans z| falls with it."""
    cfg = make_cfg(tiny, tmp_path, "depth", "data.val_fraction=0.25", "optim.batch_size=6", "optim.max_steps=6",
                   "losses.enabled=[reg]", "losses.w_depth=1.0", "losses.depth_limit_m=0.25", "optim.lr=3e-3",
                   "run.val_every=100", *NO_AUG)
    t = Trainer(cfg)
    head = t.encoder.head
    z = t.layout.slices["trans"].start + 2
    with torch.no_grad():
        head.fc.bias[z] = 0.5 / float(head.scale[z])  # trans z = 0.5 m for every face
    t.fit()
    log = read_log(tmp_path / "depth", "train")
    assert log[0]["loss/depth"] > 0.2 and log[-1]["loss/depth"] < 0.75 * log[0]["loss/depth"]
    val = read_log(tmp_path / "depth", "val")
    assert [v["step"] for v in val] == [0, 6] and val[0]["depth_abs_max_m"] > 0.45
    assert val[-1]["depth_abs_max_m"] < val[0]["depth_abs_max_m"]


def test_validation_reports_manual_label_error_by_yaw_bin(tiny, tmp_path):
    """Faces with manual labels and yaw labels in all three AFLW2000-3D bins: validation reports
    the error per bin and their mean, consistent with the overall mean; ``data.yaw_balance`` runs."""
    from train.data import split_ids
    from train.pts21 import weights_21x68

    data = copy_dataset(tiny, tmp_path / "bins")
    man = data / "manifest.jsonl"
    rows = [json.loads(ln) for ln in man.read_text().splitlines() if ln.strip()]
    _, val_idx = split_ids([r["id"] for r in rows], 0.75, 0)
    assert len(val_idx) >= 3
    yaws = {i: (10.0, -45.0, 80.0)[k % 3] for k, i in enumerate(val_idx)}
    for i, r in enumerate(rows):
        r["extra"]["pts21"] = (weights_21x68() @ np.asarray(r["lm68"], np.float64)).tolist()
        r["extra"]["yaw_deg"] = yaws.get(i, 20.0)
    man.write_text("".join(json.dumps(r) + "\n" for r in rows))
    train(make_cfg(data, tmp_path, "bins", "data.val_fraction=0.75", "optim.batch_size=3", "optim.max_steps=1",
                   "losses.enabled=[reg]", "run.val_every=100", "data.yaw_balance=1", *NO_AUG))
    v = read_log(tmp_path / "bins", "val")[-1]
    by = v["pts21_px_by_yaw"]
    assert len(by) == 3 and all(b is not None and b > 0 for b in by)
    assert v["pts21_px_bal"] == pytest.approx(sum(by) / 3)
    counts = [sum(1 for y in yaws.values() if lo <= abs(y) < hi) for lo, hi in ((0, 30), (30, 60), (60, 180))]
    assert v["pts21_px"] == pytest.approx(sum(c * b for c, b in zip(counts, by)) / sum(counts), rel=1e-4)


def test_time_budget_ends_the_run_and_drives_the_cosine(tiny, tmp_path):
    """--minutes: the run ends normally (validation, checkpoint, not 'interrupted') once the budget is
    spent, the cosine schedule follows the clock, and --resume continues the clock from the checkpoint."""
    import time

    from train.checkpoint import load_training_checkpoint
    from train.trainer import learning_rate

    o = load_config(None, ["optim.lr=1e-3", "optim.lr_schedule=cosine", "optim.lr_final=0.1"]).optim
    assert learning_rate(o, 0, 1000, time_frac=1.0) == pytest.approx(1e-4)
    assert learning_rate(o, 0, 1000, time_frac=0.5) == pytest.approx(5.5e-4)
    assert learning_rate(o, 999, 1000, time_frac=0.2) == pytest.approx(1e-4)  # steps further along: they win

    common = ["data.val_fraction=0.25", "optim.batch_size=2", "run.save_every=0", "run.log_every=1",
              "optim.max_steps=500", "optim.lr_schedule=cosine", "optim.lr=1e-3"]
    slow = lambda t: time.sleep(0.3)  # noqa: E731  every step takes ≥ 0.3 s
    s1 = train(make_cfg(tiny, tmp_path, "budget", "optim.max_minutes=0.02", *common), on_step=slow)
    assert s1["out_of_time"] and not s1["interrupted"] and 1 <= s1["step"] <= 4
    assert 1.2 <= s1["train_seconds"] < 10 and s1["val"] is not None
    lrs = [r["lr"] for r in read_log(tmp_path / "budget") if r.get("kind") == "train"]
    assert lrs[0] == pytest.approx(1e-3) and all(a > b for a, b in zip(lrs, lrs[1:]))
    assert lrs[-1] < 0.9e-3  # 500 steps would still be at ~1e-3 by step count alone
    _, _, state = load_training_checkpoint(tmp_path / "budget" / "checkpoints" / "last.pt")
    assert state["train_seconds"] >= 1.2 and state["step"] == s1["step"]

    s2 = train(make_cfg(tiny, tmp_path, "budget", "optim.max_minutes=0.04", "run.resume=true", *common), on_step=slow)
    assert s2["out_of_time"] and s2["step"] > s1["step"] and s2["train_seconds"] >= 2.4
    with pytest.raises(InputError, match="max_minutes"):
        load_config(None, ["optim.max_minutes=-1"])
