"""Renderer benchmark (``recon bench render``): forward and forward+backward milliseconds per
image at the crop size, for the default morphable model and a generated dense face-like mesh.

Two stages are timed:

* ``raster``: screen-space vertices → :func:`rasterize` → :func:`interpolate` of per-vertex
  colours (backward: to the vertices and colours), the rasteriser alone;
* ``render``: coefficient vector → :func:`render` (decode, normals, SH shading, projection,
  rasterisation, interpolation; backward: to the coefficients), what training pays per image.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from recon_cli.benchtable import time_fn
from recon_cli.render.camera import CameraConfig, project
from recon_cli.render.meshgen import face_surface
from recon_cli.render.rasterize import interpolate, rasterize
from recon_cli.render.renderer import RenderConfig, render


def synthetic_model(n_faces: int = 70_000, n_id: int = 80, n_exp: int = 64, n_tex: int = 80, seed: int = 0):
    """A :class:`~recon_cli.morphable.MorphableModel` on :func:`face_surface` with smooth random
    bases (BFM-sized coefficient vector), for benchmarks and tests that need a dense model."""
    from recon_cli.morphable import MorphableModel

    verts, faces = face_surface(n_faces)
    rng = np.random.default_rng(seed)
    V = len(verts)
    xy = verts[:, :2] / 0.1

    def smooth_basis(k, amp):
        fx, fy, ph = rng.uniform(0.5, 3, (3, k, 1, 1))
        w = rng.normal(0, amp, (k, 1, 3))
        return (np.sin(fx * xy[None, :, :1] * np.pi + ph) * np.cos(fy * xy[None, :, 1:] * np.pi) * w).astype(np.float32)

    albedo = np.stack([0.75 + 0.05 * np.sin(6 * xy[:, 0]), 0.55 + 0.05 * np.cos(5 * xy[:, 1]),
                       np.full(V, 0.45)], 1)
    return MorphableModel(
        name=f"synthetic-{len(faces)}", mean_shape=verts, id_basis=smooth_basis(n_id, 2e-3),
        exp_basis=smooth_basis(n_exp, 1e-3), mean_albedo=albedo, tex_basis=smooth_basis(n_tex, 0.03),
        triangles=faces, landmarks68=rng.integers(0, V, 68), licence="generated", source="recon_cli.render.bench")


def _raster_case(model, B: int, device: str, cam: CameraConfig):
    t = model.torch_arrays(device)
    verts = t["mean_shape"].reshape(1, -1, 3).expand(B, -1, -1)
    uv, z = project(verts, cam)
    screen = torch.cat([uv, z[..., None]], -1).contiguous()
    colors = t["mean_albedo"].reshape(1, -1, 3).expand(B, -1, -1).contiguous()
    faces = t["triangles"]

    def fwd():
        with torch.no_grad():
            return interpolate(colors, rasterize(screen, faces, cam.size))

    def fwd_bwd():
        s, c = screen.clone().requires_grad_(), colors.clone().requires_grad_()
        interpolate(c, rasterize(s, faces, cam.size)).square().mean().backward()

    return fwd, fwd_bwd


def _render_case(model, B: int, device: str, cfg: RenderConfig, seed: int = 0):
    from recon_cli.coeffs import CoeffLayout

    layout = CoeffLayout.for_model(model, cfg.n_light)
    g = torch.Generator().manual_seed(seed)
    coeffs = (torch.randn(B, layout.total, generator=g) * 0.1).to(device)

    def fwd():
        with torch.no_grad():
            return render(coeffs, model, cfg).image

    def fwd_bwd():
        c = coeffs.clone().requires_grad_()
        render(c, model, cfg).image.square().mean().backward()

    return fwd, fwd_bwd


def run_bench(models: dict[str, Any], batches=(1, 16), devices=("cpu",), repeat: int = 10, warmup: int = 2,
              stages=("raster", "render"), progress=None) -> list[dict[str, Any]]:
    """Time every (model, stage, batch, device); returns rows for :mod:`recon_cli.benchtable`.

    Row fields: ``fwd_ms``/``fwd_bwd_ms`` median wall ms per image (``_min``/``_p90`` too),
    ``*_cpu_ms`` median process CPU ms per image (all threads), ``cover`` the fraction of the
    crop covered by the mesh at zero pose.

    ``progress``: optional callable ``(description)`` called before each case."""
    rows = []
    cfg = RenderConfig()
    for name, model in models.items():
        for stage in stages:
            for device in devices:
                sync = torch.cuda.synchronize if device.startswith("cuda") else None
                for B in batches:
                    if progress:
                        progress(f"{name} {stage} B={B} {device}")
                    fwd, fwd_bwd = (_raster_case(model, B, device, cfg.camera) if stage == "raster"
                                    else _render_case(model, B, device, cfg))
                    cover = float(interpolate(torch.ones(1, model.n_verts, 1, device=device),
                                              rasterize(_screen0(model, device, cfg.camera), model.torch_arrays(device)["triangles"],
                                                        cfg.camera.size)).mean())
                    tf, cf = _timed(fwd, warmup, repeat, sync)
                    tb, cb = _timed(fwd_bwd, warmup, repeat, sync)
                    rows.append({"mesh": name, "tris": model.n_faces, "cover": round(cover, 3), "stage": stage,
                                 "dev": device, "B": B,
                                 "fwd_ms": tf["median_ms"] / B, "fwd_bwd_ms": tb["median_ms"] / B,
                                 "fwd_bwd_min_ms": tb["min_ms"] / B, "fwd_bwd_p90_ms": tb["p90_ms"] / B,
                                 "fwd_cpu_ms": cf / B, "fwd_bwd_cpu_ms": cb / B})
    return rows


def _timed(fn, warmup: int, repeat: int, sync):
    """Wall-clock statistics (``benchtable.time_fn``) plus the median process CPU time (all
    threads) per run in ms: CPU time ≈ wall × threads when the machine is quiet; much lower
    CPU than wall × threads means the process waited for the cores (contention)."""
    cpu: list[float] = []

    def wrapped():
        c = time.process_time()
        fn()
        cpu.append((time.process_time() - c) * 1e3)

    wall = time_fn(wrapped, warmup=warmup, repeat=repeat, sync=sync)
    return wall, float(np.median(cpu[warmup:]))


def _screen0(model, device, cam):
    v = model.torch_arrays(device)["mean_shape"].reshape(1, -1, 3)
    uv, z = project(v, cam)
    return torch.cat([uv, z[..., None]], -1)
