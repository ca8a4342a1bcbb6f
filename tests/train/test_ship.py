"""Shipping weights: encoder-only float16 checkpoints that load back into float32 encoders."""

from __future__ import annotations

import torch

from recon_cli.coeffs import CoeffLayout
from recon_cli.encoders.registry import build_encoder, load_checkpoint, read_checkpoint, save_checkpoint
from train.ship import ship_weights


def test_ship_halves_storage_and_keeps_outputs(tmp_path):
    layout = CoeffLayout(6, 4, 5)
    torch.manual_seed(0)
    enc = build_encoder("mobilenet_v3_small", layout, 64)
    with torch.no_grad():  # non-trivial head so the comparison means something
        for p in enc.parameters():
            p.add_(0.01 * torch.randn_like(p))
    src = save_checkpoint(tmp_path / "train.pt", enc, arch="mobilenet_v3_small", layout=layout, size=64,
                          model_name="random", model_hash="0" * 16, config={"optim": {"lr": 1e-4}},
                          extra={"train_state": {"step": 7, "best_val": 0.05, "optimizer": {}}})
    dst = ship_weights(src, tmp_path / "default.pt")
    assert dst.stat().st_size < 0.6 * src.stat().st_size
    obj = read_checkpoint(dst)
    assert obj["extra"]["step"] == 7 and obj["extra"]["storage"] == "float16" and "optimizer" not in obj["extra"]
    assert all(v.dtype != torch.float32 for v in obj["state_dict"].values())
    shipped, meta = load_checkpoint(dst)
    assert meta["config"] == {"optim": {"lr": 1e-4}}
    assert next(shipped.parameters()).dtype == torch.float32
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ref, got = enc.eval()(x), shipped(x)
    assert (ref - got).abs().max() < 1e-2 * max(1.0, ref.abs().max().item())
    assert not torch.equal(ref, torch.zeros_like(ref))


def test_ship_cli_bad_input_is_a_message(tmp_path, capsys):
    import pytest

    from train.ship import main

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    for src in (tmp_path / "missing.pt", bad):
        with pytest.raises(SystemExit) as ex:
            main([str(src), str(tmp_path / "out.pt")])
        err = capsys.readouterr().err
        assert ex.value.code == 2 and str(src) in err and "fix:" in err and "Traceback" not in err
    assert not (tmp_path / "out.pt").exists()


def test_ship_averages_several_checkpoints(tmp_path, capsys):
    """Several sources: each float tensor is their mean (a shipped float16 file may be one of them);
    integer buffers come from the first; a source of another input size is refused with a message."""
    import pytest

    from train.ship import main

    layout = CoeffLayout(6, 4, 5)
    srcs, states = [], []
    for seed in range(3):
        torch.manual_seed(seed)
        enc = build_encoder("mobilenet_v3_small", layout, 64)
        with torch.no_grad():
            for p in enc.parameters():
                p.add_(0.05 * torch.randn_like(p))
        states.append({k: v.clone() for k, v in enc.state_dict().items()})
        srcs.append(save_checkpoint(tmp_path / f"s{seed}.pt", enc, arch="mobilenet_v3_small", layout=layout, size=64,
                                    model_name="random", model_hash="0" * 16, config={"seed": seed},
                                    half=seed == 2))
    main([str(s) for s in srcs] + [str(tmp_path / "soup.pt"), "--fp32"])
    assert "wrote" in capsys.readouterr().out
    soup, meta = load_checkpoint(tmp_path / "soup.pt")
    assert meta["config"] == {"seed": 0}
    extra = read_checkpoint(tmp_path / "soup.pt")["extra"]
    assert extra["sources"] == [str(s) for s in srcs] and extra["storage"] == "float32"
    third = {k: v.half().float() for k, v in states[2].items() if v.is_floating_point()}  # stored as float16
    n = 0
    for k, v in soup.state_dict().items():
        if v.is_floating_point():
            want = (states[0][k] + states[1][k] + third[k]) / 3
            assert torch.allclose(v, want, atol=1e-6), k
            n += int(not torch.allclose(v, states[0][k], atol=1e-4))
        else:
            assert torch.equal(v, states[0][k])
    assert n > 10  # the average differs from its first source
    other = save_checkpoint(tmp_path / "s96.pt", build_encoder("mobilenet_v3_small", layout, 96),
                            arch="mobilenet_v3_small", layout=layout, size=96, model_name="random", model_hash="0" * 16)
    with pytest.raises(SystemExit) as ex:
        main([str(srcs[0]), str(other), str(tmp_path / "bad.pt")])
    err = capsys.readouterr().err
    assert ex.value.code == 2 and "size is 96" in err and "fix:" in err
    assert not (tmp_path / "bad.pt").exists()


def test_ship_records_the_training_resolution(tmp_path, shared_data):
    """``--source-scale-from DATASET`` measures the training split's median alignment scale as the
    weights' config split it; a shipped file re-shipped keeps its own provenance (``extra``)."""
    import json

    import numpy as np

    from tests.train.tiny_dataset import tiny_dataset
    from train.data import split_ids
    from train.ship import main

    data = tiny_dataset(shared_data, tmp_path / "data")
    recs = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()]
    layout = CoeffLayout(6, 4, 5)
    enc = build_encoder("mobilenet_v3_small", layout, 64)
    cfg = {"data": {"val_fraction": 0.25, "split_seed": 3}}
    src = save_checkpoint(tmp_path / "train.pt", enc, arch="mobilenet_v3_small", layout=layout, size=64,
                          model_name="random", model_hash="0" * 16, config=cfg,
                          extra={"train_state": {"step": 7, "best_val": 0.05}})
    first = ship_weights(src, tmp_path / "v1.pt")
    assert "source_scale" not in read_checkpoint(first)["meta"]
    main(["--source-scale-from", str(data), str(first), str(tmp_path / "v1s.pt")])
    obj = read_checkpoint(tmp_path / "v1s.pt")
    idx, _ = split_ids([r["id"] for r in recs], 0.25, 3)
    header = json.loads((data / "dataset.json").read_text())
    want = np.median([np.hypot(*np.asarray(recs[i]["M"])[:, 0]) for i in idx]) * 64 / header["size"]
    assert obj["meta"]["source_scale"] == round(float(want), 4)
    assert obj["extra"]["source"] == "train.pt" and obj["extra"]["step"] == 7  # not "v1.pt"
    assert read_checkpoint(ship_weights(tmp_path / "v1s.pt", tmp_path / "v2.pt"))["meta"]["source_scale"] == \
        obj["meta"]["source_scale"]  # kept when shipped again
    import pytest

    with pytest.raises(SystemExit) as ex:  # not a prepared dataset: a message naming it, nothing written
        main(["--source-scale-from", str(tmp_path / "v1.pt"), str(first), str(tmp_path / "v3.pt")])
    assert ex.value.code == 2 and not (tmp_path / "v3.pt").exists()


def test_ship_keeps_measures_and_drops_the_yaw_symmetry(tmp_path, shared_data, capsys):
    """``meta["yaw_symmetry"]`` is the weights' own: re-shipping keeps it, an average drops it;
    ``--yaw-symmetry-from`` measures it on the training split through the real encoder and the
    shipped morphable model, and says what is missing when the split has no turned face."""
    import numpy as np
    import pytest

    from recon_cli.morphable import load_default_model
    from recon_cli.pipeline.symmetry import KNOTS_DEG, YawSymmetry
    from tests.train.tiny_dataset import tiny_dataset
    from train.ship import main

    model = load_default_model()
    layout = CoeffLayout(model.n_id, model.n_exp, model.n_tex)
    table = np.random.default_rng(0).normal(size=(len(KNOTS_DEG) - 1, model.n_id + model.n_exp))
    sym = YawSymmetry(np.asarray(KNOTS_DEG), table, faces=99).to_meta()
    enc = build_encoder("mobilenet_v3_small", layout, 64)
    kw = dict(arch="mobilenet_v3_small", layout=layout, size=64, model_name=model.name, model_hash=model.content_hash(),
              config={"data": {"val_fraction": 0.25}})
    src = save_checkpoint(tmp_path / "a.pt", enc, yaw_symmetry=sym, **kw)
    assert read_checkpoint(ship_weights(src, tmp_path / "kept.pt"))["meta"]["yaw_symmetry"] == sym
    two = save_checkpoint(tmp_path / "b.pt", enc, **kw)
    assert "yaw_symmetry" not in read_checkpoint(ship_weights([src, two], tmp_path / "avg.pt"))["meta"]
    data = tiny_dataset(shared_data, tmp_path / "data")
    with pytest.raises(SystemExit) as ex:  # an untrained head predicts yaw 0 for every face
        main(["--yaw-symmetry-from", str(data), "--threads", "1", str(src), str(tmp_path / "m.pt")])
    err = " ".join(capsys.readouterr().err.split())
    assert ex.value.code == 2 and "no face predicted at |yaw| 0–15°" in err and "fix:" in err
    assert not (tmp_path / "m.pt").exists()
    with pytest.raises(SystemExit) as ex:  # not a prepared dataset
        main(["--yaw-symmetry-from", str(src), str(src), str(tmp_path / "m.pt")])
    assert ex.value.code == 2 and "not a prepared dataset" in capsys.readouterr().err
