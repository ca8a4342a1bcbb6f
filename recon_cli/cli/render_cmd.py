"""`recon model render` and `recon bench render` (issue 3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.console import Console

from recon_cli.cli.common import int_list
from recon_cli.cli.groups import bench_app, model_app
from recon_cli.errors import InputError, ReconError

console = Console(stderr=True)


def load_coeffs(path: Path, layout) -> np.ndarray:
    """Read coefficients from ``.npy`` (``(total,)`` or ``(B, total)``) or ``.json`` (a list, a
    list of lists, ``{"coeffs": …}``, or groups ``{"id": […], "angles": […], …}`` with missing
    groups zero) → ``(B, total) float32``; :class:`InputError` on anything else."""
    if not path.is_file():
        raise InputError(f"coefficient file not found: {path}", hint="pass an existing .npy or .json file")
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif path.suffix.lower() == ".json":
            data = json.loads(path.read_text())
            if isinstance(data, dict) and "coeffs" in data:
                data = data["coeffs"]
            if isinstance(data, dict):
                unknown = sorted(set(data) - set(layout.sizes))
                if unknown:
                    raise InputError(f"{path}: unknown coefficient groups {unknown}",
                                     hint=f"use the groups {list(layout.sizes)} (sizes {layout.sizes})")
                arr = np.zeros(layout.total, np.float32)
                for k, v in data.items():
                    v = np.asarray(v, dtype=np.float32).ravel()
                    if v.size != layout.sizes[k]:
                        raise InputError(f"{path}: group {k!r} has {v.size} values, the model expects {layout.sizes[k]}")
                    arr[layout.slices[k]] = v
            else:
                arr = np.asarray(data, dtype=np.float32)
        else:
            raise InputError(f"{path}: unsupported coefficient file type {path.suffix!r}", hint="use .npy or .json")
    except (ValueError, OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path} could not be read as coefficients: {e}", hint="write a float array (.npy) or a JSON list") from None
    arr = np.atleast_2d(np.asarray(arr, dtype=np.float32))
    if arr.ndim != 2 or arr.shape[1] != layout.total:
        raise InputError(f"{path}: coefficient array has shape {arr.shape}, the model expects (B, {layout.total}) "
                         f"with layout {layout.sizes}",
                         hint="use the coefficients of the same morphable model (--model) and --n-light")
    if not np.isfinite(arr).all():
        raise InputError(f"{path}: coefficients contain NaN or Inf")
    return arr


def random_coeffs(layout, seed: int, batch: int = 1) -> np.ndarray:
    """Plausible random coefficients: identity/texture ~ N(0, 1) (units of std), a few expression
    weights in [0, 0.5], head pose within ±25° yaw, ±10° pitch, ±5° roll, mild light."""
    rng = np.random.default_rng(seed)
    c = np.zeros((batch, layout.total), np.float32)
    s = layout.slices
    c[:, s["id"]] = rng.normal(0, 1, (batch, layout.n_id))
    c[:, s["tex"]] = rng.normal(0, 1, (batch, layout.n_tex))
    exp = np.zeros((batch, layout.n_exp))
    for b in range(batch):
        k = rng.choice(layout.n_exp, size=min(5, layout.n_exp), replace=False)
        exp[b, k] = rng.uniform(0, 0.5, len(k))
    c[:, s["exp"]] = exp
    c[:, s["angles"]] = rng.uniform(-1, 1, (batch, 3)) * np.radians([10, 25, 5])
    light = rng.normal(0, 0.1, (batch, layout.n_light))
    light[:, 0 :: 9] = rng.uniform(-0.1, 0.2, (batch, layout.n_light // 9))
    c[:, s["light"]] = light
    return c


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def write_png(path: Path, rgb: np.ndarray) -> None:
    """``rgb (H, W, 3)`` float [0, 1] → PNG, atomically."""
    import cv2

    from recon_cli.atomic import atomic_path

    if path.suffix.lower() != ".png":
        raise InputError(f"output {path} must be a .png file")
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(_to_uint8(rgb), cv2.COLOR_RGB2BGR)):
            raise ReconError(f"could not write {path}")


def snapshot_mesh(path: Path, verts: np.ndarray, faces: np.ndarray, colors: np.ndarray, size: int = 512) -> None:
    """Open3D off-screen snapshot (EGL) of a mesh seen from the camera side (+z), to PNG.

    ``verts (V, 3)`` metres world frame, ``faces (F, 3)``, ``colors (V, 3)`` in [0, 1]."""
    import open3d as o3d

    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(verts.astype(np.float64)),
                                     o3d.utility.Vector3iVector(faces.astype(np.int32)))
    mesh.vertex_colors = o3d.utility.Vector3dVector(np.clip(colors, 0, 1).astype(np.float64))
    mesh.compute_vertex_normals()
    vis = o3d.visualization.Visualizer()
    if not vis.create_window(visible=False, width=size, height=size):
        raise ReconError("Open3D could not open an off-screen window (no EGL/OpenGL context): the mesh snapshot was not written",
                         hint="install Mesa EGL (libegl1, libgl1-mesa-dri) or run with a display; the render PNG is unaffected")
    try:
        vis.add_geometry(mesh)
        vis.get_render_option().background_color = np.array([1.0, 1.0, 1.0])
        ctr = vis.get_view_control()
        ctr.set_front([0.0, 0.0, 1.0])
        ctr.set_up([0.0, 1.0, 0.0])
        ctr.set_lookat(verts.mean(0).tolist())
        ctr.set_zoom(0.8)
        vis.poll_events()
        vis.update_renderer()
        buf = np.asarray(vis.capture_screen_float_buffer(do_render=True))
    finally:
        vis.destroy_window()
    if buf.size == 0 or buf.std() == 0:
        raise ReconError("Open3D returned an empty off-screen capture: the mesh snapshot was not written",
                         hint="check the EGL driver (Mesa) and libusb-1.0-0; the render PNG is unaffected")
    write_png(path, buf)


def register(app: typer.Typer) -> None:
    @model_app.command("render")
    def model_render(
        out: Path = typer.Option(..., "--out", "-o", help="Output PNG of the rendered face (crop size)."),
        coeffs: Optional[Path] = typer.Option(None, "--coeffs", help="Coefficients: .npy (total,) / (B, total), or .json "
                                              "(list, or groups {id, exp, tex, angles, light, trans}; missing = 0). "
                                              "Several vectors are rendered side by side."),
        random: bool = typer.Option(False, "--random", help="Render random plausible coefficients (see --seed)."),
        seed: int = typer.Option(0, "--seed", help="Seed for --random."),
        count: int = typer.Option(1, "--count", min=1, max=16, help="Number of random faces for --random (side by side)."),
        model: Optional[Path] = typer.Option(None, "--model", help="Morphable model .npz (default: the shipped ICT-FaceKit model)."),
        snapshot: Optional[Path] = typer.Option(None, "--snapshot", help="Also write an Open3D off-screen snapshot of the first mesh (PNG)."),
        size: int = typer.Option(224, "--size", min=16, max=4096, help="Crop size in pixels (camera scales with it)."),
        n_light: int = typer.Option(9, "--n-light", help="SH light coefficients: 9 (white) or 27 (RGB)."),
        background: float = typer.Option(0.0, "--background", help="Grey level [0, 1] behind the face."),
        json_out: Optional[Path] = typer.Option(None, "--json", help="Write landmarks (crop px), coverage and the coefficients as JSON."),
    ) -> None:
        """Render a face from morphable-model coefficients with the differentiable renderer.

        Zero coefficients (the default without --coeffs/--random) give the mean face, frontal,
        under ambient light. Example: [bold]recon model render --random --seed 3 --out face.png --snapshot mesh.png[/]
        """
        import torch

        from recon_cli.coeffs import CoeffLayout
        from recon_cli.morphable import load_model
        from recon_cli.render.camera import CameraConfig
        from recon_cli.render.renderer import RenderConfig, render

        if coeffs is not None and random:
            raise InputError("--coeffs and --random are exclusive", hint="pass one of them")
        if n_light not in (9, 27):
            raise InputError(f"--n-light must be 9 or 27, got {n_light}")
        if out.suffix.lower() != ".png":
            raise InputError(f"--out {out} must end in .png")
        if snapshot is not None and snapshot.suffix.lower() != ".png":
            raise InputError(f"--snapshot {snapshot} must end in .png")
        mm = load_model(model)
        layout = CoeffLayout.for_model(mm, n_light)
        if coeffs is not None:
            c = load_coeffs(coeffs, layout)
        elif random:
            c = random_coeffs(layout, seed, count)
        else:
            c = np.zeros((1, layout.total), np.float32)
        cfg = RenderConfig(camera=CameraConfig().scaled(size), n_light=n_light, background=background)
        with torch.no_grad():
            r = render(torch.from_numpy(c), mm, cfg)
        img = r.image.permute(0, 2, 3, 1).numpy()
        write_png(out, np.concatenate(list(img), 1))
        console.print(f"wrote {out} ({len(c)} × {size}×{size}, model {mm.name}, {mm.n_faces} triangles)")
        if json_out is not None:
            from recon_cli.atomic import atomic_write_text

            payload = {"model": mm.name, "size": size, "layout": layout.to_dict(), "coeffs": c.tolist(),
                       "coverage": r.mask.mean((1, 2, 3)).tolist(), "landmarks68": r.landmarks.numpy().round(3).tolist()}
            atomic_write_text(json_out, json.dumps(payload) + "\n")
        if snapshot is not None:
            snapshot_mesh(snapshot, r.verts[0].numpy(), mm.triangles, r.colors[0].numpy())
            console.print(f"wrote {snapshot} (Open3D off-screen)")

    @bench_app.command("render")
    def bench_render(
        json_out: Optional[Path] = typer.Option(None, "--json", help="Write the rows and environment as JSON."),
        threads: int = typer.Option(2, "--threads", min=1, help="torch CPU threads (torch.set_num_threads)."),
        batch: str = typer.Option("1,16", "--batch", help="Comma-separated batch sizes."),
        device: str = typer.Option("auto", "--device", help="cpu, cuda, or auto (cpu, plus cuda when present)."),
        meshes: str = typer.Option("default,dense", "--meshes", help="default (the shipped model), dense (generated ~70k triangles), or a .npz path; comma-separated."),
        stages: str = typer.Option("raster,render", "--stages", help="raster (rasterise+interpolate) and/or render (coefficients → image)."),
        repeat: int = typer.Option(10, "--repeat", min=1, help="Timed runs per case (median reported)."),
        dense_faces: int = typer.Option(70_000, "--dense-faces", help="Triangles of the generated dense mesh."),
    ) -> None:
        """Renderer speed: forward and forward+backward ms per image at 224×224 (table + JSON)."""
        import torch
        from rich.progress import Progress

        from recon_cli.benchtable import env_info, print_table, write_json
        from recon_cli.morphable import load_model
        from recon_cli.render.bench import run_bench, synthetic_model

        torch.set_num_threads(threads)
        batches = int_list(batch, "--batch")
        if device == "auto":
            devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        else:
            devices = [d.strip() for d in device.split(",")]
            if any(d.startswith("cuda") for d in devices) and not torch.cuda.is_available():
                raise InputError("--device cuda requested but torch has no CUDA device here", hint="use --device cpu")
        models = {}
        for m in [x.strip() for x in meshes.split(",") if x.strip()]:
            if m == "default":
                try:
                    mm = load_model(None)
                except InputError as e:
                    console.print(f"[yellow]skipping the default model:[/] {e.message}")
                    continue
                models[mm.name] = mm
            elif m == "dense":
                mm = synthetic_model(dense_faces)
                models[f"dense-{mm.n_faces // 1000}k"] = mm
            else:
                mm = load_model(Path(m))
                models[mm.name] = mm
        st = [s.strip() for s in stages.split(",") if s.strip()]
        bad = set(st) - {"raster", "render"}
        if bad:
            raise InputError(f"--stages: unknown {sorted(bad)}", hint="use raster and/or render")
        n_cases = len(models) * len(st) * len(devices) * len(batches)
        with Progress(console=console, transient=True) as prog:
            task = prog.add_task("bench render", total=n_cases)
            first = [True]

            def step(desc):
                if not first[0]:
                    prog.advance(task)
                first[0] = False
                prog.update(task, description=desc)

            rows = run_bench(models, batches, devices, repeat=repeat, stages=st, progress=step)
        env = env_info(",".join(devices))
        env["load_avg_1min"] = round(__import__("os").getloadavg()[0], 2)
        shown = ("mesh", "tris", "cover", "stage", "dev", "B", "fwd_ms", "fwd_bwd_ms", "fwd_bwd_cpu_ms")
        print_table(f"recon bench render: ms per image at 224×224, torch threads {threads} (JSON has min/p90/cpu)",
                    [{k: r[k] for k in shown} for r in rows], env)
        write_json(json_out, {"bench": "render", "rows": rows, "env": env})
