"""`recon train` (training loop, resume, DDP via torchrun) and `recon bench train`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from recon_cli.cli.common import int_list
from recon_cli.cli.groups import bench_app
from recon_cli.errors import InputError

_HELP = """Train the coefficient encoder on a prepared dataset (`recon prep` output).

Every config key can be set with [bold]--set key=value[/] (repeatable; values are YAML, e.g.
--set optim.grad_clip=5 --set losses.enabled=\\[photo,wing]); the options below are shortcuts.
Precedence: defaults < --config FILE < --set < options. Outputs go to PROJECT/NAME:
config.yaml, checkpoints/last.pt, log.jsonl, train.csv, grids/*.png, summary.json.

[bold]--resume[/] continues PROJECT/NAME exactly (weights, optimiser, data position, RNG); the run's
own config.yaml is the base, so only pass what should change (e.g. a larger --max-steps).
Ctrl-C saves a checkpoint and exits cleanly.

[bold]--validate-only[/] measures weights on the held-out split of --data and exits, writing nothing
but --json: the --init weights, or with --resume the run's last checkpoint (its moving average
with --ema). The split and the data options (e.g. data.val_max, data.lm68_max_disagree) are those
of the config, so pass the ones the run used to compare like with like.
Multi-GPU / multi-process:
[dim]torchrun --nproc_per_node N -m recon_cli train --data DATASET ...[/]
"""


def build_config(data: Optional[Path], config: Optional[Path], sets: list[str], *, losses: Optional[str] = None,
                 device: Optional[str] = None, batch_size: Optional[int] = None, epochs: Optional[int] = None,
                 max_steps: Optional[int] = None, name: Optional[str] = None, project: Optional[str] = None,
                 resume: bool = False, arch: Optional[str] = None, lr: Optional[float] = None,
                 identity_weights: Optional[Path] = None, size: Optional[int] = None, workers: Optional[int] = None,
                 amp: Optional[str] = None, init: Optional[Path] = None, minutes: Optional[float] = None,
                 ema: Optional[float] = None):
    """CLI options → validated :class:`train.config.TrainConfig` (see ``recon train --help``)."""
    from recon_cli.config import apply_overrides
    from train.config import load_config, parse_losses, validate

    opts: dict = {}
    for key, value in (("data.path", str(data) if data else None), ("run.device", device),
                       ("optim.batch_size", batch_size), ("optim.epochs", epochs), ("optim.max_steps", max_steps),
                       ("run.name", name), ("run.project", project), ("model.arch", arch), ("optim.lr", lr),
                       ("losses.identity_weights", str(identity_weights) if identity_weights else None),
                       ("data.size", size), ("data.workers", workers), ("run.amp", amp),
                       ("model.init", str(init) if init else None), ("optim.max_minutes", minutes),
                       ("optim.ema_decay", ema)):
        if value is not None:
            opts[key] = value
    if losses is not None:
        opts["losses.enabled"] = parse_losses(losses)
    if resume:
        opts["run.resume"] = True
        if config is None:  # the run's own resolved config is the base of a resume
            probe = apply_overrides(load_config(None, [*sets]), {k: v for k, v in opts.items() if k.startswith("run.")})
            saved = probe.run_dir / "config.yaml"
            if not saved.is_file():
                raise InputError(f"cannot resume: {saved} not found",
                                 hint="pass the --project and --name of an existing run (or its --config)")
            config = saved
    cfg = load_config(config, [*sets])
    if opts:
        cfg = validate(apply_overrides(cfg, opts))
    if not cfg.data.path:
        raise InputError("no dataset given", hint="pass --data DATASET (a folder written by `recon prep`)")
    return cfg


_VAL_ROWS = (("n", "faces", "{:d}"), ("lm_px", "vs the dataset's 68 points, mean px at 224", "{:.2f}"),
             ("lm_px_median", "  median", "{:.2f}"), ("lm_px_max", "  worst face", "{:.1f}"),
             ("nme", "  NME (box normalised)", "{:.4f}"), ("pts21_px", "vs the manual labels, px at 224", "{:.2f}"),
             ("pts21_px_by_yaw", "  by |yaw| 0-30 / 30-60 / 60+", None), ("pts21_px_bal", "  yaw-balanced", "{:.2f}"),
             ("yaw_err_deg", "|yaw| error vs the label, deg", "{:.1f}"), ("yaw_err_deg_60", "  labels beyond 60°", "{:.1f}"),
             ("depth_abs_max_m", "worst |trans z|, m", "{:.2f}"))


def _validate_only(cfg, console, json_out: Optional[Path]) -> None:
    """``recon train --validate-only``: the held-out validation of the --init / resumed weights."""
    from rich.table import Table

    from recon_cli.benchtable import write_json
    from train import distributed as D
    from train.trainer import Trainer

    if not cfg.model.init and not cfg.run.resume:
        raise InputError("--validate-only needs weights to measure",
                         hint="pass --init WEIGHTS.pt, or --resume with the --project/--name of a run")
    trainer = Trainer(cfg, validate_only=True)
    try:
        if not trainer.val_idx:
            raise InputError(f"{cfg.data.path} has no held-out faces at data.val_fraction={cfg.data.val_fraction}",
                             hint="pass --set data.val_fraction=0.04 (or the fraction the run used)")
        val = trainer.validate()
    finally:
        D.shutdown(trainer.dist)
    if val is None:
        raise InputError(f"no held-out face of {cfg.data.path} could be loaded",
                         hint="see the warnings above for the bad files; `recon prep` the dataset again")
    weights = cfg.model.init if not cfg.run.resume else str(trainer.ckpt_path)
    table = Table(title=f"held-out validation of {weights} ({val['weights']} weights)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, label, fmt in _VAL_ROWS:
        if val.get(key) is not None:
            v = val[key]
            table.add_row(label, " / ".join("-" if x is None else f"{x:.2f}" for x in v) if fmt is None else fmt.format(v))
    console.print(table)
    write_json(json_out, {"weights": weights, "step": trainer.step, "data": cfg.data.path,
                          "val_fraction": cfg.data.val_fraction, "val_max": cfg.data.val_max, "val": val})


def register(app: typer.Typer) -> None:
    @app.command("train", help=_HELP, no_args_is_help=True)
    def train(
        data: Optional[Path] = typer.Option(None, "--data", "-d", help="Prepared dataset folder (dataset.json + manifest.jsonl)."),
        config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config file (any subset of the keys)."),
        losses: Optional[str] = typer.Option(None, "--losses", help="Enabled losses, comma-separated: photo,wing,per,reg,fre."),
        sets: list[str] = typer.Option([], "--set", help="Override any config key: --set optim.grad_clip=5 (repeatable)."),
        device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Images per step per process (paper: 16)."),
        epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs to train (ignored when --max-steps > 0)."),
        max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many optimiser steps."),
        minutes: Optional[float] = typer.Option(None, "--minutes", help="Time budget: end the run (final validation, checkpoint) after this many minutes of training, resumes included; a cosine schedule then decays by time or steps, whichever is further along."),
        name: Optional[str] = typer.Option(None, "--name", help="Run name (folder under --project)."),
        project: Optional[str] = typer.Option(None, "--project", help="Folder of runs (default runs/train)."),
        resume: bool = typer.Option(False, "--resume", help="Continue PROJECT/NAME from checkpoints/last.pt."),
        arch: Optional[str] = typer.Option(None, "--arch", help="Encoder: resnet50 | resnet18 | mobilenet_v3_large | mobilenet_v3_small."),
        lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate (paper: 1e-4)."),
        identity_weights: Optional[Path] = typer.Option(None, "--identity-weights", help="Face-recognition checkpoint for the identity loss."),
        size: Optional[int] = typer.Option(None, "--size", help="Training image size (crops are resized; default 224)."),
        workers: Optional[int] = typer.Option(None, "--workers", help="DataLoader worker processes (0 = load in the main process; use 4-8 on a GPU machine)."),
        amp: Optional[str] = typer.Option(None, "--amp", help="auto | off | bf16 | fp16 (mixed precision on CUDA)."),
        init: Optional[Path] = typer.Option(None, "--init", help="Fine-tune: start the encoder from this recon checkpoint (e.g. recon_cli/weights/default.pt); new optimiser, step 0."),
        ema: Optional[float] = typer.Option(None, "--ema", help="Keep a moving average of the weights with this decay (e.g. 0.999: about the last 1,000 steps); validation and the checkpoint's encoder are then the average (train/ema.py). Default 0: off, as in the paper."),
        validate_only: bool = typer.Option(False, "--validate-only", help="Measure the --init weights (or, with --resume, the run's checkpoint) on the held-out split, print it and exit; no training, no run folder."),
        json_out: Optional[Path] = typer.Option(None, "--json", help="Write the run summary (with --validate-only: the validation) as JSON to this file."),
    ) -> None:
        import logging
        import os

        from rich.console import Console
        from rich.logging import RichHandler

        from recon_cli.benchtable import write_json

        cfg = build_config(data, config, sets, losses=losses, device=device, batch_size=batch_size, epochs=epochs,
                           max_steps=max_steps, name=name, project=project, resume=resume, arch=arch, lr=lr,
                           identity_weights=identity_weights, size=size, workers=workers, amp=amp, init=init,
                           minutes=minutes, ema=ema)
        console = Console(stderr=True)
        logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(console=console, show_path=False)])
        logging.captureWarnings(True)
        from train.trainer import train as run_training

        if validate_only:
            _validate_only(cfg, Console(), json_out)
            return
        summary = run_training(cfg)
        if int(os.environ.get("RANK", "0")) == 0:
            val = summary.get("val") or {}
            state = ("interrupted, checkpoint saved" if summary["interrupted"] else
                     "done (time budget spent)" if summary.get("out_of_time") else "done")
            console.print(f"[bold green]{state}[/]: step {summary['step']}, {summary['seconds']:.1f} s; "
                          + (f"val landmarks {val['lm_px']:.2f} px (224), NME {val['nme']:.4f}; " if val else "")
                          + (f"vs manual labels {val['pts21_px']:.2f} px; " if val.get("pts21_px") is not None else "")
                          + f"skipped batches {summary['skipped_batches']}, bad samples {summary['bad_samples']}\n"
                          f"  run: {summary['run_dir']}  checkpoint: {summary['checkpoint']}")
            write_json(json_out, summary)

    @bench_app.command("train")
    def bench_train(
        json_out: Optional[Path] = typer.Option(None, "--json", help="Write the rows and environment as JSON."),
        arch: str = typer.Option("resnet50,mobilenet_v3_large", "--arch", help="Comma-separated encoder architectures."),
        size: int = typer.Option(224, "--size", help="Image size."),
        batch: str = typer.Option("16", "--batch", help="Batch size, or comma-separated sizes (one row each), e.g. 64,256."),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda (auto: CUDA with AMP when present, and CPU)."),
        losses: str = typer.Option("photo,wing,per,reg,fre", "--losses", help="Losses in the timed step."),
        repeat: int = typer.Option(5, "--repeat", help="Timed steps per row (after 2 warm-up steps)."),
        threads: int = typer.Option(0, "--threads", help="torch CPU threads (0 = default)."),
        model: Optional[Path] = typer.Option(None, "--model", help="Morphable model .npz (default: shipped ICT-FaceKit)."),
        amp: str = typer.Option("auto", "--amp", help="Comma-separated encoder autocast modes, one row each: auto "
                                "(CUDA: bf16/fp16; CPU: off), off, bf16 (CPU too: fast on CPUs with AMX or "
                                "AVX512-BF16), fp16 (CUDA). Same values as the run.amp config key."),
    ) -> None:
        """Training step time (forward + render + losses + backward + Adam step) per image, synthetic batch."""
        from recon_cli.benchtable import print_table, write_json
        from train.bench import bench_train as run_bench

        batches = int_list(batch, "--batch")
        rows, env = run_bench([a.strip() for a in arch.split(",") if a.strip()], size=size, batch=batches, device=device,
                              losses=losses, repeat=repeat, threads=threads, model_path=model,
                              amp_modes=[a.strip() for a in amp.split(",") if a.strip()])
        print_table(f"recon bench train (size {size}, batch {','.join(map(str, batches))})", rows, env)
        write_json(json_out, {"rows": rows, "env": env})
