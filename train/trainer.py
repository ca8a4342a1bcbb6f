"""The training loop: Adam, AMP on CUDA, DDP through ``torchrun``, exact resume, logs, grids.

Use :func:`train` (``recon train`` calls it) or :class:`Trainer` directly::

    from train.config import load_config
    from train.trainer import Trainer
    cfg = load_config(None, ["data.path=DATASET", "optim.max_steps=100"])
    summary = Trainer(cfg).fit()

A run writes to ``<run.project>/<run.name>/``: ``config.yaml`` (resolved config),
``checkpoints/last.pt`` (+ ``step_XXXXXXX.pt`` with ``run.keep_steps``), ``log.jsonl`` and
``train.csv`` (every loss term per step, validation records), ``grids/step_XXXXXXX.png`` and
``grid_last.png`` (input | composited render | landmarks), ``summary.json``.

With ``optim.ema_decay`` > 0 the run keeps a moving average of the weights (:mod:`train.ema`):
validation, grids and the checkpoint's encoder are the average, and the raw weights ride in the
training state so a resume continues exactly.

Exact resume: the checkpoint holds the weights, optimiser, GradScaler, step, sampler position
(epoch, batch) and all RNG states; with ``run.deterministic`` on CPU a run interrupted after k
steps and resumed ends with bit-identical weights to an uninterrupted one (tested).
Ctrl-C (SIGINT) or SIGTERM: the current step finishes, a checkpoint is written and ``fit``
returns with ``interrupted = True``; a second Ctrl-C aborts at once (the last checkpoint stays).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from recon_cli.atomic import atomic_write_text
from recon_cli.config import to_dict
from recon_cli.errors import InputError
from train import distributed as D
from train.augment import AugmentSettings
from train.checkpoint import load_training_checkpoint, rng_state, save_training_checkpoint, set_rng_state
from train.config import TrainConfig, save_yaml, validate
from train.data import (FaceDataset, ResumableBatchSampler, collate_skip_bad, load_split, source_scale,
                        yaw_bin_weights, yaw_bins)
from train.ema import WeightAverage
from train.grid import make_grid, write_grid
from train.interrupt import stop_on_signals
from train.objective import build_objective
from train.progress import TrainProgress
from train.runlog import RunLog
from train.step import encode, landmark_error, pts21_error, to_device

log = logging.getLogger("recon.train")


class Trainer:
    """One training run (see the module docstring). ``on_step(trainer)`` is called after every
    optimiser step (hooks for tests/tools; :meth:`request_stop` ends the run like Ctrl-C).
    ``validate_only``: only :meth:`validate` will be called (``recon train --validate-only``), so
    an existing run of the same name is not in the way and nothing is written."""

    def __init__(self, cfg: TrainConfig, *, on_step: Callable[["Trainer"], None] | None = None,
                 validate_only: bool = False):
        self.cfg = cfg = validate(cfg)
        self.on_step = on_step
        self._stop = False
        self.dist = D.init(cfg.run.device)
        self.device = self.dist.device
        self.amp_dtype = D.resolve_amp(cfg.run.amp, self.device)
        if cfg.run.threads > 0:
            torch.set_num_threads(cfg.run.threads)
        if cfg.run.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            if self.device.type == "cuda":
                torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        _seed_all(cfg.run.seed + self.dist.rank)
        self.run_dir = cfg.run_dir
        self.ckpt_path = self.run_dir / "checkpoints" / "last.pt"
        if self.dist.is_main and not cfg.run.resume and not validate_only and self.ckpt_path.exists():
            raise InputError(f"run {self.run_dir} already has a checkpoint",
                             hint="continue it with --resume, or choose another --name/--project")

        # ---- data
        header, entries, train_idx, val_idx = load_split(cfg.data.path, cfg.data.max_samples, cfg.data.val_fraction,
                                                         cfg.data.split_seed)
        if cfg.data.val_max > 0:
            val_idx = val_idx[: cfg.data.val_max]
        d = cfg.data
        aug = AugmentSettings(shift=d.aug_shift, scale=d.aug_scale, rotate=d.aug_rotate, flip=d.aug_flip)
        self.dataset = FaceDataset(cfg.data.path, entries, d.size, (d.w_skin, d.w_eyes, d.w_nose, d.w_mouth),
                                   use_pts21=d.use_pts21, augment=aug, seed=cfg.run.seed,
                                   fallback_lm68=d.fallback_lm68, lm68_max_disagree=d.lm68_max_disagree)
        self.header, self.train_idx, self.val_idx = header, train_idx, val_idx
        self.source_scale = source_scale(entries, train_idx, d.size, int(header.get("size", d.size)))
        self.sampler = ResumableBatchSampler(train_idx, cfg.optim.batch_size, seed=cfg.run.seed,
                                             rank=self.dist.rank, world=self.dist.world, drop_last=d.drop_last,
                                             tag_epoch=aug.active,
                                             weights=yaw_bin_weights(entries, train_idx, d.yaw_balance))
        self.loader_gen = torch.Generator().manual_seed(cfg.run.seed)
        self.loader = DataLoader(self.dataset, batch_sampler=self.sampler, num_workers=d.workers,
                                 collate_fn=collate_skip_bad, pin_memory=self.device.type == "cuda",
                                 persistent_workers=d.workers > 0, generator=self.loader_gen)

        # ---- model, objective, optimiser
        from recon_cli.coeffs import CoeffLayout
        from recon_cli.encoders import build_encoder
        from recon_cli.morphable import load_model

        self.model = load_model(cfg.model.morphable or None)
        self.layout = CoeffLayout.for_model(self.model, cfg.model.n_light)
        self.encoder = build_encoder(cfg.model.arch, self.layout, d.size).to(self.device)
        if cfg.model.pretrained and not cfg.run.resume:
            _load_pretrained(self.encoder, cfg.model.pretrained)
        if cfg.model.init and not cfg.run.resume:
            _load_init(self.encoder, cfg.model.init, cfg.model.arch, self.layout, d.size)
        self.objective = build_objective(cfg, self.model, self.layout, self.device, header)
        o = cfg.optim
        # the moving average of the weights (optim.ema_decay; train.ema), from the starting weights
        self.ema = WeightAverage(self.encoder, o.ema_decay) if o.ema_decay > 0 else None
        self.optimizer = torch.optim.Adam(self.encoder.parameters(), lr=o.lr, betas=(o.beta1, o.beta2),
                                          weight_decay=o.weight_decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.step, self.n_skipped, self.n_nonfinite, self.best_val = 0, 0, 0, math.inf
        # seconds spent in earlier sessions of this run (resume) and the rank-agreed total so far
        self.seconds_before, self.seconds, self._t0 = 0.0, 0.0, None
        self.budget_s = 60.0 * cfg.optim.max_minutes  # 0: no time budget
        if cfg.run.resume:
            self._resume()
        self.net = self.encoder
        if self.dist.enabled:
            if cfg.run.sync_bn and self.device.type == "cuda":
                # reuses the same Parameter objects, so the optimiser built above stays valid
                self.encoder = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.encoder)
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.encoder, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.steps_per_epoch = len(self.sampler)
        # max_steps > 0 overrides epochs
        self.total_steps = o.max_steps if o.max_steps > 0 else o.epochs * self.steps_per_epoch
        self.runlog: RunLog | None = None

    # ------------------------------------------------------------------ resume / checkpoint
    def _resume(self) -> None:
        weights, meta, state = load_training_checkpoint(self.ckpt_path)
        want = {"arch": self.cfg.model.arch, "size": self.cfg.data.size, "layout": self.layout.to_dict(),
                "model_hash": self.model.content_hash()}
        for key, value in want.items():
            if meta.get(key) != value:
                raise InputError(f"cannot resume {self.ckpt_path}: its {key} is {meta.get(key)!r}, this config gives {value!r}",
                                 hint="resume with the run's own config.yaml (it is loaded by default) or start a new --name")
        raw = state.get("raw_weights")  # written with optim.ema_decay: `weights` are the average
        self.encoder.load_state_dict(raw if raw is not None else weights)
        if self.ema is not None and raw is not None:
            self.ema.load(weights, int(state["ema"]["updates"]))
        elif self.ema is not None:
            warnings.warn(f"{self.ckpt_path} was written without optim.ema_decay: the average starts here")
            self.ema.load(weights, 0)
        elif raw is not None:
            warnings.warn(f"{self.ckpt_path} was written with optim.ema_decay; this run drops the average "
                          "and continues from the raw weights")
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.sampler.state.epoch, self.sampler.state.batch = int(state["sampler"]["epoch"]), int(state["sampler"]["batch"])
        c = state.get("counters", {})
        self.n_skipped, self.n_nonfinite = int(c.get("skipped", 0)), int(c.get("nonfinite", 0))
        self.best_val = float(state.get("best_val", math.inf))
        self.seconds_before = self.seconds = float(state.get("train_seconds", 0.0))
        if state.get("world", 1) != self.dist.world:
            warnings.warn(f"resuming a run written with {state.get('world')} process(es) on {self.dist.world}: "
                          "the data order from here on differs from an uninterrupted run")
        rngs = state["rng"]
        set_rng_state(rngs[self.dist.rank] if isinstance(rngs, list) and self.dist.rank < len(rngs) else
                      (rngs[0] if isinstance(rngs, list) else rngs), self.loader_gen)
        self._resumed = True

    def save(self) -> Path | None:
        """Write ``checkpoints/last.pt`` (rank 0; every rank's RNG state is gathered)."""
        rngs = [rng_state(self.loader_gen)]
        if self.dist.enabled:
            gathered: list[Any] = [None] * self.dist.world
            torch.distributed.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if not self.dist.is_main:
            return None
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "step": self.step,
            "sampler": {"epoch": self.sampler.state.epoch, "batch": self.sampler.state.batch},
            "rng": rngs,
            "counters": {"skipped": self.n_skipped, "nonfinite": self.n_nonfinite, "bad_samples": self.dataset.n_bad},
            "best_val": self.best_val,
            "world": self.dist.world,
            "train_seconds": self._elapsed(),
        }
        if self.ema is not None:  # the average is the checkpoint's encoder; the raw weights resume
            state["raw_weights"] = {k: v.detach().cpu() for k, v in self.encoder.state_dict().items()}
            state["ema"] = self.ema.state()
        keep = self.run_dir / "checkpoints" / f"step_{self.step:07d}.pt" if self.cfg.run.keep_steps else None
        return save_training_checkpoint(self.ckpt_path, self.eval_encoder, arch=self.cfg.model.arch, layout=self.layout,
                                        size=self.cfg.data.size, model=self.model, config=to_dict(self.cfg),
                                        train_state=state, keep_copy=keep, source_scale=self.source_scale)

    @property
    def eval_encoder(self) -> torch.nn.Module:
        """The weights that are validated, drawn in grids and saved as the checkpoint's encoder:
        the moving average with ``optim.ema_decay``, else the trained weights themselves."""
        return self.ema.module if self.ema is not None else self.encoder

    def _elapsed(self) -> float:
        """Seconds of training loop in this run so far, earlier sessions (resume) included."""
        return self.seconds if self._t0 is None else self.seconds_before + time.perf_counter() - self._t0

    def request_stop(self) -> None:
        """Finish the current step, save a checkpoint and return from :meth:`fit`."""
        self._stop = True

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict[str, Any]:
        cfg, main = self.cfg, self.dist.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_yaml(cfg, self.run_dir / "config.yaml")
            self.runlog = RunLog(self.run_dir, resume_step=self.step if cfg.run.resume else None)
            self.runlog.write({"kind": "event", "step": self.step, "event": "resume" if cfg.run.resume else "start",
                               "train": len(self.train_idx), "val": len(self.val_idx), "world": self.dist.world,
                               "device": str(self.device), "amp": str(self.amp_dtype),
                               "source_scale": self.source_scale})
        t0, interrupted, last = time.perf_counter(), False, {}
        budget = self.budget_s
        self._t0, out_of_time = t0, budget > 0 and self.seconds_before >= budget  # a resume past its budget
        if cfg.run.val_at_start and cfg.run.val_every and self.step == 0:
            self.validate()
        with stop_on_signals(self.request_stop, lambda: self._stop, announce=main), \
                TrainProgress(main and cfg.run.progress, self.total_steps, self.step) as bar:
            while self.step < self.total_steps and not interrupted and not out_of_time:
                steps_before = self.step
                for batch in self.loader:  # one epoch, from the sampler's position
                    if D.all_flags(self.dist, self._stop)[0]:
                        interrupted = True
                        break
                    t_step = time.perf_counter()
                    terms = self._train_step(batch)
                    self._advance_sampler()
                    if terms:
                        self.step, last = self.step + 1, terms
                        self._after_step(terms, t_step, t0, bar)
                    if self.on_step:
                        self.on_step(self)
                    if budget > 0:
                        self.seconds = D.all_max(self.dist, self.seconds_before + time.perf_counter() - t0)
                        out_of_time = self.seconds >= budget
                    if self.step >= self.total_steps or out_of_time:
                        break
                else:
                    if self.step == steps_before:
                        raise InputError(f"a whole epoch of {self.cfg.data.path} gave no usable batch "
                                         f"({self.n_skipped} batches skipped, {self.dataset.n_bad} bad samples)",
                                         hint="see the warnings above / log.jsonl for the bad files")
            interrupted = interrupted or D.all_flags(self.dist, self._stop)[0]
        if budget <= 0:
            self.seconds = self.seconds_before + time.perf_counter() - t0
        val = self.validate() if not interrupted else None
        if main:
            self._grid()
        self.save()
        summary = {"run_dir": str(self.run_dir), "step": self.step, "epoch": self.sampler.state.epoch,
                   "interrupted": interrupted, "out_of_time": out_of_time and not interrupted,
                   "train_seconds": round(self.seconds, 3), "skipped_batches": self.n_skipped, "nonfinite_batches": self.n_nonfinite,
                   "bad_samples": self.dataset.n_bad, "last": {k: v for k, v in last.items()}, "val": val,
                   "seconds": round(time.perf_counter() - t0, 3), "checkpoint": str(self.ckpt_path)}
        if main:
            self.runlog.write({"kind": "event", "step": self.step, "event": "interrupted" if interrupted else "end"})
            self.runlog.close()
            atomic_write_text(self.run_dir / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
        D.barrier(self.dist)
        return summary

    def _train_mode(self) -> None:
        """The encoder in training mode; its BatchNorm layers in inference mode with ``optim.freeze_bn``."""
        self.encoder.train()
        if self.cfg.optim.freeze_bn:
            for m in self.encoder.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def _advance_sampler(self) -> None:
        s = self.sampler.state
        s.batch += 1
        if s.batch >= len(self.sampler):
            s.epoch, s.batch = s.epoch + 1, 0

    def _train_step(self, batch: dict[str, Any] | None) -> dict[str, float]:
        """One optimiser step; returns the loss terms (floats) or {} when the batch was skipped."""
        empty, = D.all_flags(self.dist, batch is None)
        if empty:
            self._skip("empty_batch", "every sample of the batch was bad")
            return {}
        self._train_mode()
        batch = to_device(batch, self.device)
        coeffs = encode(self.net, batch["image"], self.amp_dtype)
        losses, _ = self.objective(coeffs, batch)
        total = losses["total"]
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        bad, = D.all_flags(self.dist, not bool(torch.isfinite(total)))
        if bad:
            self.n_nonfinite += 1
            self.optimizer.zero_grad(set_to_none=True)
            self._skip("nonfinite_loss", f"loss is {float(total.detach())} (indices {batch['index'].tolist()})")
            return {}
        if self.cfg.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.encoder.parameters(), self.cfg.optim.grad_clip)
        lr = learning_rate(self.cfg.optim, self.step, self.total_steps,
                           time_frac=self.seconds / self.budget_s if self.budget_s > 0 else 0.0)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.encoder)
        out = {f"loss/{k}": float(v.detach()) for k, v in losses.items()}
        out["n"] = int(batch["image"].shape[0])
        if batch.get("n_bad"):
            out["bad_in_batch"] = int(batch["n_bad"])
        return out

    def _skip(self, event: str, detail: str) -> None:
        self.n_skipped += 1
        msg = f"step {self.step}: batch skipped ({event}): {detail}"
        log.warning(msg)
        if self.runlog is not None:
            self.runlog.write({"kind": "event", "step": self.step, "event": "skipped_batch", "reason": event, "detail": detail})

    def _after_step(self, terms: dict[str, float], t_step: float, t0: float, bar: TrainProgress) -> None:
        cfg, main, s = self.cfg, self.dist.is_main, self.step
        dt = time.perf_counter() - t_step
        if main and cfg.run.log_every and s % cfg.run.log_every == 0:
            self.runlog.write({"kind": "train", "step": s, "epoch": self.sampler.state.epoch, **terms,
                               "lr": self.optimizer.param_groups[0]["lr"],
                               "img_per_s": terms.get("n", 0) * self.dist.world / max(dt, 1e-9),
                               "time": round(time.perf_counter() - t0, 3)})
        bar.update(s, terms)
        if cfg.run.val_every and s % cfg.run.val_every == 0 and s < self.total_steps:
            self.validate()
        if main and cfg.run.grid_every and s % cfg.run.grid_every == 0 and s < self.total_steps:
            self._grid()
        if cfg.run.save_every and s % cfg.run.save_every == 0 and s < self.total_steps:
            self.save()

    # ------------------------------------------------------------------ validation / grid
    @torch.no_grad()
    def validate(self) -> dict[str, float] | None:
        """Landmark error on the held-out split (rank 0; others wait): mean px at 224 and NME."""
        result = None
        if self.dist.is_main and self.val_idx:
            net = self.eval_encoder.eval()
            bs = self.cfg.optim.batch_size
            px, nme, p21, y21, yaw_d, yaw_l, tz, terms, n = [], [], [], [], [], [], [], {}, 0
            for i in range(0, len(self.val_idx), bs):
                batch = collate_skip_bad([self.dataset[j] for j in self.val_idx[i:i + bs]])
                if batch is None:
                    continue
                batch = to_device(batch, self.device)
                coeffs = encode(net, batch["image"], self.amp_dtype)
                losses, out = self.objective(coeffs, batch)
                e_px, e_nme = landmark_error(out.landmarks, batch["lm68"], self.cfg.data.size)
                px.append(e_px), nme.append(e_nme)
                if getattr(out, "pts21", None) is not None:
                    e21, has21 = pts21_error(out.pts21, batch["pts21"], self.cfg.data.size)
                    p21.append(e21[has21])
                    y21.append(batch["yaw"][has21].cpu())
                groups = self.layout.split(coeffs)
                have = torch.isfinite(batch["yaw"])  # vs the head-yaw label where the sample has one
                yaw_d.append((groups["angles"][:, 1] - batch["yaw"])[have].abs())
                yaw_l.append(batch["yaw"][have].abs())
                tz.append(groups["trans"][:, 2].float().abs().cpu())  # metres off the aligned depth
                b = batch["image"].shape[0]
                for k, v in losses.items():
                    terms[k] = terms.get(k, 0.0) + float(v) * b
                for g, v in groups.items():  # coefficient magnitudes (divergence check)
                    terms[f"coef_rms/{g}"] = terms.get(f"coef_rms/{g}", 0.0) + float(v.pow(2).mean()) * b
                n += b
            self._train_mode()
            if n:
                # vs the manual AFLW labels (visible used points) where any sample has them
                e21 = torch.cat(p21).float().cpu() if p21 else torch.zeros(0)
                bins = torch.from_numpy(yaw_bins(torch.cat(y21).double().rad2deg().numpy())) if y21 else None
                by_bin = [e21[bins == k] for k in range(3)] if bins is not None and len(bins) else []
                yd, yl = torch.cat(yaw_d), torch.cat(yaw_l)
                prof = yl > math.radians(60.0)
                all_px = torch.cat(px).float()
                # the mean hides whether a few faces explode (a projection through the camera) or all
                # drift: the median and the worst face tell them apart
                # "ema" once the average holds any step (before that it is the starting weights)
                result = {"weights": "ema" if self.ema is not None and self.ema.updates else "raw",
                          "lm_px": float(all_px.mean()), "lm_px_median": float(all_px.median()),
                          "lm_px_max": float(all_px.max()), "nme": float(torch.cat(nme).mean()), "n": n,
                          # |trans z| (m): a face far off the aligned depth is a runaway (train.losses.pose)
                          "depth_abs_max_m": float(torch.cat(tz).max()),
                          **({"pts21_px": float(e21.mean())} if e21.numel() else {}),
                          # by AFLW2000-3D |yaw| bin of the label, and their mean when all three have faces
                          **({"pts21_px_by_yaw": [float(b.mean()) if b.numel() else None for b in by_bin]}
                             if by_bin else {}),
                          **({"pts21_px_bal": float(sum(b.mean() for b in by_bin) / 3)}
                             if by_bin and all(b.numel() for b in by_bin) else {}),
                          **({"yaw_err_deg": math.degrees(float(yd.mean()))} if yd.numel() else {}),
                          **({"yaw_err_deg_60": math.degrees(float(yd[prof].mean()))} if prof.any() else {}),
                          **{(k if k.startswith("coef_rms/") else f"loss/{k}"):
                             (math.sqrt(v / n) if k.startswith("coef_rms/") else v / n) for k, v in terms.items()}}
                self.best_val = min(self.best_val, result["nme"])
                if self.runlog is not None:  # None outside fit(): validate_only
                    self.runlog.write({"kind": "val", "step": self.step, **result})
                log.info("step %d: val lm %.2f px (224; median %.2f, worst %.1f), NME %.4f, max |t_z| %.2f m%s%s%s",
                         self.step, result["lm_px"], result["lm_px_median"], result["lm_px_max"], result["nme"],
                         result["depth_abs_max_m"],
                         f", manual labels {result['pts21_px']:.2f} px" if "pts21_px" in result else "",
                         f" (yaw-balanced {result['pts21_px_bal']:.2f})" if "pts21_px_bal" in result else "",
                         f", yaw vs label {result['yaw_err_deg']:.1f}° (|yaw| > 60°: {result.get('yaw_err_deg_60', float('nan')):.1f}°)"
                         if "yaw_err_deg" in result else "")
        D.barrier(self.dist)
        return result

    @torch.no_grad()
    def _grid(self) -> None:
        """Grid of up to 8 fixed samples (validation split first) in eval mode."""
        idx = (self.val_idx + self.train_idx)[:8]
        batch = collate_skip_bad([self.dataset[j] for j in idx])
        if batch is None:
            return
        from recon_cli.render.renderer import composite

        net = self.eval_encoder.eval()
        batch = to_device(batch, self.device)
        coeffs = encode(net, batch["image"], self.amp_dtype)
        out = self.objective.renderer(coeffs)
        comp = composite(out.image, out.mask, batch["image"])
        self._train_mode()
        grid = make_grid(batch["image"], comp, batch["lm68"], out.landmarks)
        write_grid(self.run_dir / "grids" / f"step_{self.step:07d}.png", grid)
        write_grid(self.run_dir / "grid_last.png", grid)


def train(cfg: TrainConfig, on_step: Callable[[Trainer], None] | None = None) -> dict[str, Any]:
    """Run training for ``cfg``; returns the summary (also written to ``<run>/summary.json``)."""
    trainer = Trainer(cfg, on_step=on_step)
    try:
        return trainer.fit()
    finally:
        D.shutdown(trainer.dist)


# ---------------------------------------------------------------------------------------- helpers
def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _load_pretrained(encoder: torch.nn.Module, path: str) -> None:
    from recon_cli.encoders import load_pretrained

    load_pretrained(encoder, path)


def _load_init(encoder: torch.nn.Module, path: str, arch: str, layout, size: int) -> None:
    """Copy a recon checkpoint's encoder weights (``recon train`` last.pt, a shipped fp16 file)
    into ``encoder``; raises :class:`InputError` when the architecture or layout differs, and warns
    when the checkpoint was trained at an input size other than this run's ``size`` (px): the weights
    load (the network is size-free), but its features do not carry across the scale of the face in
    pixels (v1.8, trained at 128, scored 51.6 px on the held-out split at 224 against 6.4 at 128),
    so that is rarely what was meant."""
    from recon_cli.encoders.registry import read_checkpoint

    ck = read_checkpoint(path)
    meta = ck["meta"]
    if meta.get("arch") != arch:
        raise InputError(f"--init {path} is a {meta.get('arch')} encoder, this run trains {arch}",
                         hint=f"pass --arch {meta.get('arch')} or another checkpoint")
    want = encoder.state_dict()
    state = {k: v.to(want[k].dtype) if k in want else v for k, v in ck["state_dict"].items()}
    try:
        encoder.load_state_dict(state)
    except RuntimeError as e:
        raise InputError(f"--init {path} does not fit this encoder ({layout.total} coefficients): {str(e)[:300]}",
                         hint="fine-tune from a checkpoint trained with the same morphable model and n_light") from None
    trained = meta.get("size")
    if trained and int(trained) != int(size):
        warnings.warn(f"--init {path} was trained at {trained} px and this run feeds it {size} px crops: its "
                      f"features do not carry over to another input scale, so expect it to start far off (see "
                      f"the step-0 validation); pass --size {trained} to fine-tune it at its own size")
    log.info("initialised the encoder from %s", path)


def learning_rate(o, step: int, total: int, time_frac: float = 0.0) -> float:
    """The learning rate of optimiser step ``step`` (0-based) of ``total``: ``optim.lr`` constant
    (the paper), or ``cosine`` from ``optim.lr`` down to ``optim.lr_final`` × lr at the last step.
    With a time budget (``optim.max_minutes``) the cosine's progress is the larger of
    ``step / (total - 1)`` and ``time_frac`` (the share of the budget spent, agreed over the ranks),
    so it reaches ``lr_final`` when the budget runs out. Without one it is a function of the step
    alone, so a resumed run continues the same schedule bit-exactly."""
    if o.lr_schedule == "cosine" and (total > 1 or time_frac > 0):
        t = min(max(step, 0), total - 1) / (total - 1) if total > 1 else 0.0
        t = min(max(t, time_frac), 1.0)
        return o.lr * (o.lr_final + (1.0 - o.lr_final) * 0.5 * (1.0 + math.cos(math.pi * t)))
    return o.lr
