"""Training checkpoints: the encoder checkpoint (``recon_cli.encoders.save_checkpoint``, loadable
for inference and export) with the full training state in its ``extra``.

``<project>/<name>/checkpoints/last.pt`` holds, besides the encoder weights and meta (arch,
layout, size, morphable model name + hash, resolved config):

``extra["train_state"]``: ``optimizer`` (state dict), ``scaler`` (GradScaler state or None),
``step`` (optimiser steps done), ``sampler`` (``{"epoch", "batch"}``: the next batch to load),
``rng`` (torch CPU/CUDA, NumPy, Python and the DataLoader generator states), ``counters``
(skipped batches, bad samples), ``best_val`` and ``world`` (the DDP world size it was written with);
with ``optim.ema_decay``, ``raw_weights`` (the optimiser's weights; the checkpoint's encoder is
then their moving average, :mod:`train.ema`) and ``ema`` (``{"decay", "updates"}``).

Written atomically (a crash never leaves a truncated ``last.pt``).
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recon_cli.errors import InputError

TRAIN_STATE_VERSION = 1


def rng_state(loader_gen: torch.Generator | None = None) -> dict[str, Any]:
    """All RNG states as tensors and plain containers (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "state": list(py_state), "gauss": py_gauss},
        "loader": loader_gen.get_state() if loader_gen is not None else None,
    }


def set_rng_state(state: dict[str, Any], loader_gen: torch.Generator | None = None) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if loader_gen is not None and state.get("loader") is not None:
        loader_gen.set_state(state["loader"])


def save_training_checkpoint(path: Path, encoder: torch.nn.Module, *, arch: str, layout, size: int, model,
                             config: dict[str, Any], train_state: dict[str, Any], keep_copy: Path | None = None,
                             source_scale: float | None = None) -> Path:
    """Write ``path`` atomically (encoder checkpoint + ``extra["train_state"]``); ``source_scale``:
    the training faces' median crop px per source px (:func:`train.data.source_scale`)."""
    from recon_cli.encoders import save_checkpoint

    save_checkpoint(path, encoder, arch=arch, layout=layout, size=size, model_name=model.name,
                    model_hash=model.content_hash(), config=config, source_scale=source_scale,
                    extra={"train_state": {"version": TRAIN_STATE_VERSION, **train_state}})
    if keep_copy is not None:
        shutil.copyfile(path, keep_copy)
    return path


def load_training_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """``(encoder state dict, meta, train_state)`` of a checkpoint written by
    :func:`save_training_checkpoint`; :class:`InputError` when it is missing or not one."""
    from recon_cli.encoders import read_checkpoint

    path = Path(path)
    if not path.is_file():
        raise InputError(f"no checkpoint to resume: {path} does not exist",
                         hint="start the run without --resume, or pass the --project/--name of an existing run")
    obj = read_checkpoint(path)
    meta, extra = obj["meta"], obj.get("extra") or {}
    state = extra.get("train_state")
    if not isinstance(state, dict) or state.get("version") != TRAIN_STATE_VERSION:
        raise InputError(f"{path} is an encoder checkpoint without (a compatible) training state",
                         hint="resume only from checkpoints/last.pt written by `recon train`; to start from "
                              "these weights, train a new run")
    return obj["state_dict"], meta, state
