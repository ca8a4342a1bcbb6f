"""``recon bench train``: time of one training step per image on a synthetic batch.

A step = encoder forward (autocast per ``--amp``) → render → composite → the enabled losses →
backward → Adam step, exactly the trainer's :func:`train.step` path, on a batch of the right
shapes: random RGB crops, an all-face mask, 68 landmarks around the mean-face projection. The
identity network is the development-data MobileFaceNet when present (else ``per`` is left out,
with the warning). Rows: CPU and CUDA (when available) for each architecture and autocast mode
(``auto``: CPU float32, CUDA bf16/fp16).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from recon_cli.benchtable import env_info, time_fn


def synthetic_batch(batch: int, size: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lm = size / 2 + (torch.rand(batch, 68, 2, generator=g) - 0.5) * size * 0.5
    out = {"image": torch.rand(batch, 3, size, size, generator=g), "face_mask": torch.ones(batch, 1, size, size),
           "region_weight": torch.ones(batch, 1, size, size), "lm68": lm,
           "pts21": torch.full((batch, 21, 2), float("nan")), "index": torch.arange(batch)}
    return {k: v.to(device) for k, v in out.items()}


def bench_train(archs: list[str], *, size: int = 224, batch: int | list[int] = 16, device: str = "auto",
                losses: str = "photo,wing,per,reg,fre", repeat: int = 5, threads: int = 0,
                model_path: str | Path | None = None, amp_modes: list[str] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One row per (device, batch, amp mode, arch); ``amp_modes`` are ``run.amp`` values (default
    ``["auto"]``); ``batch`` one size or a list (on a GPU the rows show how much of a step is fixed
    per-step cost, kernel launches and host work: images/s that grow with the batch).

    Rows ``{arch, device, amp, size, batch, ms_per_step, ms_per_image, images_per_s, losses}``."""
    from recon_cli.coeffs import CoeffLayout
    from recon_cli.encoders import build_encoder
    from recon_cli.morphable import load_model
    from train.config import load_config
    from train.distributed import resolve_amp, resolve_device
    from train.objective import build_objective
    from train.step import encode

    if threads > 0:
        torch.set_num_threads(threads)
    if device != "auto":
        resolve_device(device)  # an unknown device, or CUDA where there is none: a message, not a traceback
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if device == "auto" else [device]
    batches = [int(batch)] if isinstance(batch, int) else [int(b) for b in batch]
    load_config(None, {"data.size": size, "optim.batch_size": min(batches)})  # the smallest is checked before any timing
    model = load_model(model_path)
    layout = CoeffLayout.for_model(model)
    rows = []
    for dev_name in devices:
        dev = torch.device(dev_name)
        cfg = load_config(None, {"data.size": size, "losses.enabled": losses.split(",")})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore" if dev_name != devices[0] else "default")
            objective = build_objective(cfg, model, layout, dev)
        data_by_batch = {b: synthetic_batch(b, size, dev) for b in batches}
        for batch, amp_spec, arch in [(b, m, a) for b in batches for m in (amp_modes or ["auto"]) for a in archs]:
            data = data_by_batch[batch]
            amp = resolve_amp(amp_spec, dev)
            torch.manual_seed(0)
            enc = build_encoder(arch, layout, size).to(dev).train()
            opt = torch.optim.Adam(enc.parameters(), lr=1e-4)
            scaler = torch.amp.GradScaler(dev.type, enabled=amp == torch.float16)

            def step():
                coeffs = encode(enc, data["image"], amp)
                total = objective(coeffs, data)[0]["total"]
                opt.zero_grad(set_to_none=True)
                scaler.scale(total).backward()
                scaler.step(opt)
                scaler.update()

            sync = torch.cuda.synchronize if dev.type == "cuda" else None
            t = time_fn(step, warmup=2, repeat=repeat, sync=sync)
            ms = t["median_ms"]
            rows.append({"arch": arch, "device": dev_name, "amp": str(amp).replace("torch.", "") if amp else "off",
                         "size": size, "batch": batch, "ms_per_step": ms, "ms_per_image": ms / batch,
                         "images_per_s": 1e3 * batch / ms, "p90_ms_per_step": t["p90_ms"],
                         "losses": ",".join(sorted(objective.losses.enabled if objective.losses.identity is not None
                                                   else objective.losses.enabled - {"per"}))})
            del enc, opt
    env = env_info(",".join(devices))
    env["model"] = model.name
    env["vertices"], env["triangles"] = model.n_verts, model.n_faces
    return rows, env
