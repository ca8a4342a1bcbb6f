"""`recon train` / `recon bench train`: options, config precedence, clear errors, an end-to-end
run + resume through the CLI entry point, and a 2-process DDP run through torchrun (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from recon_cli.cli.app import main
from recon_cli.cli.train_cmd import build_config
from recon_cli.errors import InputError
from tests.train.tiny_dataset import tiny_dataset
from train.runlog import read_log

REPO = Path(__file__).resolve().parents[2]
FAST = ["--size", "64", "--arch", "mobilenet_v3_small", "--set", "run.threads=1", "--set", "run.progress=false"]


@pytest.fixture(scope="module")
def tiny(shared_data, tmp_path_factory):
    return tiny_dataset(shared_data, tmp_path_factory.mktemp("h5cli"))


def run_cli(args, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


def test_config_precedence_defaults_yaml_set_options(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text(yaml.safe_dump({"optim": {"lr": "2e-4", "batch_size": 3, "epochs": 4},
                                 "losses": {"w_fre": 0.5}, "data": {"path": "/somewhere"}}))
    cfg = build_config(None, y, ["optim.batch_size=5", "optim.epochs=6", "losses.wing_eps=3"],
                       batch_size=7, losses="fre,photo", name="n1", size=96, ema=0.99)
    assert cfg.optim.lr == 2e-4 and isinstance(cfg.optim.lr, float)  # YAML's "2e-4" string coerced
    assert cfg.optim.batch_size == 7  # option > --set > YAML
    assert cfg.optim.epochs == 6  # --set > YAML
    assert cfg.losses.w_fre == 0.5 and cfg.losses.wing_eps == 3.0 and cfg.losses.w_photo == 3.0  # defaults stay
    assert cfg.losses.enabled == ["photo", "fre"] and cfg.run.name == "n1" and cfg.data.size == 96
    assert cfg.data.path == "/somewhere" and cfg.optim.ema_decay == 0.99
    with pytest.raises(InputError, match="optim.ema_decay"):
        build_config(None, y, [], ema=1.0)


def test_yaml_words_off_on_yes_no_are_strings_for_str_fields_and_bools_for_bool_fields(tmp_path):
    """``run.amp=off`` is the documented value: YAML 1.1 would read it as False (a type error)."""
    cfg = build_config(Path("/x"), None, ["run.amp=off", "run.progress=off", "run.resume=no", "data.use_pts21=on"])
    assert cfg.run.amp == "off" and cfg.run.progress is False and cfg.run.resume is False and cfg.data.use_pts21 is True
    y = tmp_path / "c.yaml"
    y.write_text("run:\n  amp: off\n  progress: no\n")
    cfg = build_config(Path("/x"), y, [])
    assert cfg.run.amp == "off" and cfg.run.progress is False
    from recon_cli.pipeline.smoothing import SmoothingConfig
    from recon_cli.config import apply_overrides

    assert apply_overrides(SmoothingConfig(enabled=True), ["enabled=off"]).enabled is False


@pytest.mark.parametrize("sets, match", [
    (["optim.nope=1"], "unknown key"),
    (["optim.lr=abc"], "optim.lr"),
    (["optim.batch_size=0"], "optim.batch_size"),
    (["run.amp=fp8"], "run.amp"),
    (["optim"], "key=value"),
    (["losses.enabled=[photo,foo]"], "unknown loss"),
])
def test_bad_overrides_are_input_errors(sets, match):
    with pytest.raises(InputError, match=match):
        build_config(Path("/x"), None, sets)


def test_cli_errors_are_clear(tmp_path, tiny, capsys):
    code, _, err = run_cli(["train", "--data", str(tmp_path / "missing")], capsys)
    assert code == 2 and "dataset folder not found" in err and "recon prep" in err
    code, _, err = run_cli(["train", "--data", str(tiny), "--losses", "photo,foo"], capsys)
    assert code == 2 and "unknown loss" in err
    code, _, err = run_cli(["train", "--data", str(tiny), "--config", str(tmp_path / "no.yaml")], capsys)
    assert code == 2 and "config file not found" in err
    code, _, err = run_cli(["train", "--set", "optim.lr=1e-3"], capsys)
    assert code == 2 and "--data" in err
    code, _, err = run_cli(["train", "--resume", "--project", str(tmp_path), "--name", "none"], capsys)
    assert code == 2 and "cannot resume" in err
    if not torch.cuda.is_available():
        code, _, err = run_cli(["train", "--data", str(tiny), "--device", "cuda", "--project", str(tmp_path)], capsys)
        assert code == 2 and "CUDA is not available" in err


def test_cli_train_then_resume(tiny, tmp_path, capsys):
    base = ["train", "--data", str(tiny), *FAST, "--losses", "photo,wing,reg", "--batch-size", "4",
            "--project", str(tmp_path), "--name", "cli"]
    code, _, err = run_cli([*base, "--max-steps", "2", "--json", str(tmp_path / "s.json")], capsys)
    assert code == 0, err
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["step"] == 2 and Path(s["checkpoint"]).is_file() and "done" in err
    # a second run with the same name must not overwrite the first
    code, _, err = run_cli([*base, "--max-steps", "2"], capsys)
    assert code == 2 and "--resume" in err
    # resume: the run's own config.yaml is the base; only --max-steps changes
    code, _, err = run_cli(["train", "--resume", "--project", str(tmp_path), "--name", "cli", "--max-steps", "3",
                            "--json", str(tmp_path / "s2.json")], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "s2.json").read_text())["step"] == 3
    saved = yaml.safe_load((tmp_path / "cli" / "config.yaml").read_text())
    assert saved["optim"]["max_steps"] == 3 and saved["data"]["size"] == 64 and saved["losses"]["enabled"] == ["photo", "wing", "reg"]
    assert [r["step"] for r in read_log(tmp_path / "cli", "train")] == [1, 2, 3]


def test_cli_validate_only(tiny, tmp_path, capsys):
    """--validate-only measures a run's checkpoint (--resume) or any weights (--init) on the held-out
    split: the same numbers as the run's own final validation, and no run folder is written."""
    split = ["--set", "data.val_fraction=0.25"]
    base = ["train", "--data", str(tiny), *FAST, *split, "--losses", "photo,wing,reg", "--batch-size", "4"]
    code, _, err = run_cli([*base, "--project", str(tmp_path), "--name", "r", "--max-steps", "2", "--ema", "0.9"], capsys)
    assert code == 0, err
    last = read_log(tmp_path / "r", "val")[-1]
    files = sorted(p.name for p in (tmp_path / "r").rglob("*"))
    code, out, err = run_cli(["train", "--resume", "--project", str(tmp_path), "--name", "r", "--validate-only",
                              "--json", str(tmp_path / "v.json")], capsys)
    assert code == 0, err
    v = json.loads((tmp_path / "v.json").read_text())
    assert v["step"] == 2 and v["val"]["weights"] == "ema" and v["val"]["n"] == last["n"] > 0
    assert v["val"]["lm_px"] == pytest.approx(last["lm_px"], rel=1e-6) and "held-out validation" in out
    assert sorted(p.name for p in (tmp_path / "r").rglob("*")) == files  # nothing written to the run
    ck = tmp_path / "r" / "checkpoints" / "last.pt"
    code, out, err = run_cli([*base, "--init", str(ck), "--project", str(tmp_path), "--name", "new", "--validate-only",
                              "--json", str(tmp_path / "i.json")], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "i.json").read_text())["val"]["lm_px"] == pytest.approx(last["lm_px"], rel=1e-4)
    assert not (tmp_path / "new").exists()
    with pytest.warns(UserWarning, match=r"trained at 64 px and this run feeds it 96 px.*--size 64"):
        code, _, err = run_cli([*base, "--size", "96", "--init", str(ck), "--validate-only"], capsys)
    assert code == 0, err  # another input size loads (the architecture is size-free), with the warning
    code, _, err = run_cli([*base, "--validate-only"], capsys)
    assert code == 2 and "--init" in err and "Traceback" not in err
    code, _, err = run_cli([*base, "--init", str(ck), "--set", "data.val_fraction=0", "--validate-only"], capsys)
    err = " ".join(err.split())  # the message wraps at the terminal's width
    assert code == 2 and "no held-out faces" in err and "data.val_fraction" in err


def test_bench_train_cli(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code, stdout, err = run_cli(["bench", "train", "--arch", "mobilenet_v3_small", "--size", "64", "--batch", "2,3",
                                 "--repeat", "1", "--device", "cpu", "--losses", "photo,wing,reg", "--threads", "1",
                                 "--amp", "off,bf16", "--json", str(out)], capsys)
    assert code == 0, err
    data = json.loads(out.read_text())
    rows = data["rows"]
    # one row per batch size and --amp mode
    assert [(r["batch"], r["amp"]) for r in rows] == [(2, "off"), (2, "bfloat16"), (3, "off"), (3, "bfloat16")]
    from recon_cli.cpu import cpu_capability, cpu_has_native_bf16

    assert data["env"]["cpu_capability"] == cpu_capability() and cpu_capability() != ""
    assert data["env"]["cpu_native_bf16"] is cpu_has_native_bf16()
    assert all(r["arch"] == "mobilenet_v3_small" and r["device"] == "cpu" for r in rows)
    assert rows[0]["ms_per_image"] > 0 and rows[0]["images_per_s"] > 0 and "recon bench train" in stdout
    code, stdout, err = run_cli(["bench", "train", "--arch", "mobilenet_v3_small", "--size", "64", "--device", "cpu",
                                 "--amp", "fp16"], capsys)
    assert code == 2 and "run.amp=fp16 needs a CUDA device" in stdout + err and "Traceback" not in stdout + err
    if not torch.cuda.is_available():  # CUDA asked for where there is none: a message (it was a traceback)
        code, stdout, err = run_cli(["bench", "train", "--arch", "mobilenet_v3_small", "--size", "64", "--device", "cuda"],
                                    capsys)
        assert code == 2 and "CUDA is not available" in " ".join((stdout + err).split()) and "Traceback" not in stdout + err
    # one 32-px image per batch leaves BatchNorm one value per channel: a message (it was a traceback)
    code, stdout, err = run_cli(["bench", "train", "--arch", "resnet18", "--size", "32", "--batch", "1", "--device", "cpu",
                                 "--repeat", "1"], capsys)
    text = " ".join((stdout + err).split())
    assert code == 2 and "optim.batch_size = 1" in text and "at least 2" in text and "Traceback" not in text
    code, stdout, err = run_cli(["bench", "train", "--batch", "16,x", "--device", "cpu"], capsys)
    assert code == 2 and "--batch must be a comma-separated list" in " ".join((stdout + err).split())


@pytest.mark.slow  # two processes start torch + the model (~20 s on 2 busy cores); the only DDP check
def test_torchrun_two_process_ddp_gloo(tiny, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "recon_cli",
           "train", "--data", str(tiny), *FAST, "--losses", "photo,wing", "--batch-size", "2", "--max-steps", "2",
           "--device", "cpu", "--project", str(tmp_path), "--name", "ddp"]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    start = read_log(tmp_path / "ddp", "event")[0]
    assert start["world"] == 2
    assert [x["step"] for x in read_log(tmp_path / "ddp", "train")] == [1, 2]
    ck = torch.load(tmp_path / "ddp" / "checkpoints" / "last.pt", weights_only=True)
    st = ck["extra"]["train_state"]
    assert st["world"] == 2 and len(st["rng"]) == 2 and st["step"] == 2
