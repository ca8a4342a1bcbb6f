"""The moving average of the weights (``optim.ema_decay``, train.ema): its arithmetic, and a real
training run on the tiny dataset: the checkpoint's encoder is the average, the raw weights resume
bit-exactly, ``python -m train.ship --raw`` recovers them."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from recon_cli.encoders import load_checkpoint, read_checkpoint
from recon_cli.errors import InputError
from tests.train.test_trainer import make_cfg, tiny  # noqa: F401  (the module-scoped dataset fixture)
from train.config import load_config
from train.ema import WeightAverage
from train.runlog import read_log
from train.ship import main as ship_main
from train.trainer import train


def test_average_is_the_bias_corrected_exponential_mean():
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    start = {k: v.clone().float() for k, v in net.state_dict().items()}  # never counted (d_1 = 0)
    ema = WeightAverage(net, 0.9)
    acc = {k: torch.zeros_like(v) for k, v in start.items()}  # Σ 0.9^(k−j) · w_j, then / Σ 0.9^(k−j)
    for k in range(1, 6):
        assert ema.rate() == pytest.approx(1 - 0.1 / (1 - 0.9 ** k))
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
            net[1].running_mean.add_(1.0)
            net[1].num_batches_tracked.add_(1)
        ema.update(net)
        for name, v in net.state_dict().items():
            if v.is_floating_point():
                acc[name] = 0.9 * acc[name] + v.float()
                expect = acc[name] / sum(0.9 ** i for i in range(k))
                assert torch.allclose(ema.module.state_dict()[name], expect, atol=1e-5), name
            else:
                assert torch.equal(ema.module.state_dict()[name], v), name  # integer counters copied
    assert ema.updates == 5 and ema.rate() == pytest.approx(1 - 0.1 / (1 - 0.9 ** 6))
    ema.updates = 10_000
    assert ema.rate() == pytest.approx(0.9)  # the correction fades: a plain exponential average
    assert not any(p.requires_grad for p in ema.module.parameters())
    with pytest.raises(ValueError):
        WeightAverage(net, 1.0)


def test_decay_out_of_range_is_a_config_error():
    with pytest.raises(InputError, match="optim.ema_decay"):
        load_config(None, ["optim.ema_decay=1.5"])


def _state(path):
    return torch.load(path, weights_only=True)


def test_run_with_average_checkpoints_it_and_resumes_bit_exact(tiny, tmp_path):  # noqa: F811
    """Run A: 5 steps with ema_decay 0.5. Run B: Ctrl-C after step 2, --resume to 5. Both the
    averaged and the raw weights match bit for bit; they differ from each other; ship --raw gives
    the raw ones, plain ship the average; validation reports which weights it measured."""
    common = ["data.val_fraction=0.25", "optim.batch_size=2", "run.save_every=0", "optim.ema_decay=0.5"]
    train(make_cfg(tiny, tmp_path, "a", "optim.max_steps=5", *common))

    def ctrl_c(t):
        if t.step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    assert train(make_cfg(tiny, tmp_path, "b", "optim.max_steps=5", *common), on_step=ctrl_c)["step"] == 2
    assert train(make_cfg(tiny, tmp_path, "b", "optim.max_steps=5", "run.resume=true", *common))["step"] == 5
    ca, cb = _state(tmp_path / "a" / "checkpoints" / "last.pt"), _state(tmp_path / "b" / "checkpoints" / "last.pt")
    sa, sb = ca["extra"]["train_state"], cb["extra"]["train_state"]
    assert sa["ema"] == sb["ema"] == {"decay": 0.5, "updates": 5}
    for k in ca["state_dict"]:
        assert torch.equal(ca["state_dict"][k], cb["state_dict"][k]), k
        assert torch.equal(sa["raw_weights"][k], sb["raw_weights"][k]), k
    differ = [k for k, v in ca["state_dict"].items() if v.is_floating_point() and not torch.equal(v, sa["raw_weights"][k])]
    assert len(differ) > 10  # the average is not the raw weights
    assert read_log(tmp_path / "a", "val")[-1]["weights"] == "ema"

    ship_main([str(tmp_path / "a" / "checkpoints" / "last.pt"), str(tmp_path / "ema.pt"), "--fp32"])
    ship_main(["--raw", str(tmp_path / "a" / "checkpoints" / "last.pt"), str(tmp_path / "raw.pt"), "--fp32"])
    ema, _ = load_checkpoint(tmp_path / "ema.pt")
    raw, _ = load_checkpoint(tmp_path / "raw.pt")
    for k, v in ema.state_dict().items():
        assert torch.equal(v, ca["state_dict"][k]) and torch.equal(raw.state_dict()[k], sa["raw_weights"][k]), k
    assert read_checkpoint(tmp_path / "raw.pt")["extra"]["weights"] == "raw"


def test_ship_raw_of_a_plain_checkpoint_is_a_message(tiny, tmp_path, capsys):  # noqa: F811
    train(make_cfg(tiny, tmp_path, "plain", "optim.max_steps=1", "data.val_fraction=0.25", "optim.batch_size=2"))
    src = tmp_path / "plain" / "checkpoints" / "last.pt"
    with pytest.raises(SystemExit) as ex:
        ship_main(["--raw", str(src), str(tmp_path / "out.pt")])
    err = capsys.readouterr().err
    assert ex.value.code == 2 and str(src) in err and "drop --raw" in err and "Traceback" not in err
    assert not (tmp_path / "out.pt").exists()
