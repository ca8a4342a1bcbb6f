"""`recon model info|import-ict|import-bfm|sample` (issue 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from recon_cli.cli.groups import model_app


def _progress_bar(title: str):
    """A rich progress bar and a ``(stage, done, total)`` callback that drives it."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeElapsedColumn(), transient=False)
    task = bar.add_task(title, total=1)

    def update(stage: str, done: int, total: int) -> None:
        bar.update(task, description=stage, completed=done, total=max(total, 1))

    return bar, update


def _print_info(info: dict, path: str) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"morphable model: {path}", show_header=False)
    for key in ("name", "source", "units", "vertices", "triangles", "id_dims", "exp_dims", "tex_dims", "landmarks",
                "hash", "licence"):
        t.add_row(key, str(info.get(key, "")))
    Console().print(t)


def _write_json(path: Path, obj) -> None:
    from recon_cli.atomic import atomic_write_text

    text = json.dumps(obj, indent=2, sort_keys=True)
    if str(path) == "-":
        typer.echo(text)
    else:
        atomic_write_text(path, text + "\n")


def info(
    path: Optional[Path] = typer.Argument(None, help="Model .npz (default: the shipped ICT-FaceKit model)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the summary as JSON to this file ('-' = stdout)."),
) -> None:
    """Show a model's size (vertices, triangles, id/exp/tex dimensions, landmarks), source, licence and hash."""
    from recon_cli.morphable import load_model

    model = load_model(path)
    summary = model.info()
    summary["path"] = str(path) if path else "default (ict_face.npz)"
    if str(json_out) != "-":
        _print_info(summary, summary["path"])
    if json_out is not None:
        _write_json(json_out, summary)


def import_ict(
    src: Path = typer.Argument(..., help="ICT-FaceKit: the FaceXModel folder, its parent, the .tar.xz, or a folder holding it."),
    out: Path = typer.Option(..., "--out", "-o", help="Output model file (.npz)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the new model's summary as JSON."),
) -> None:
    """Build a recon model (.npz) from ICT-FaceKit light: face region, metres, 100 id / 53 expression modes,
    synthetic 80-mode albedo. Rebuilding from the released archive reproduces the shipped default."""
    from recon_cli.morphable.ict import import_ict as run

    bar, update = _progress_bar("reading ICT-FaceKit")
    with bar:
        model = run(src, out, progress=update)
    _print_info(model.info(), str(out))
    if json_out is not None:
        _write_json(json_out, {**model.info(), "path": str(out)})


def import_bfm(
    src: Path = typer.Argument(..., help="BFM_model_front.mat (Deep3DFaceRecon), or a folder with 01_MorphableModel.mat, "
                                         "Exp_Pca.bin, std_exp.txt and the index files."),
    out: Path = typer.Option(..., "--out", "-o", help="Output model file (.npz). Do not redistribute it (BFM licence)."),
    topology: Optional[Path] = typer.Option(None, "--topology", help="Folder with BFM_front_idx.mat, BFM_exp_idx.mat, "
                                            "facemodel_info.mat, std_exp.txt if not beside the raw files."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the new model's summary as JSON."),
) -> None:
    """Convert a user's Basel Face Model 2009 (+ expression basis) to a recon model: 80 id / 64 exp / 80 tex."""
    from recon_cli.morphable.bfm import import_bfm as run

    bar, update = _progress_bar("reading BFM")
    with bar:
        model = run(src, out, topology=topology, progress=update)
    _print_info(model.info(), str(out))
    if json_out is not None:
        _write_json(json_out, {**model.info(), "path": str(out)})


def sample(
    out: Path = typer.Option(..., "--out", "-o", help="Mesh to write: .obj or .ply (per-vertex colour)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    model_path: Optional[Path] = typer.Option(None, "--model", help="Model .npz (default: the shipped model)."),
    id_scale: float = typer.Option(1.0, help="Identity coefficients ~ N(0, id_scale) (1.0 = the model's spread)."),
    exp_scale: float = typer.Option(0.3, help="Expression spread: PCA models N(0, s); blendshape models |N(0, s)| clipped to [0, 1]."),
    tex_scale: float = typer.Option(1.0, help="Texture coefficients ~ N(0, tex_scale)."),
    neutral: bool = typer.Option(False, "--neutral", help="Write the mean face (all coefficients zero)."),
    linear: bool = typer.Option(False, "--linear", help="Write linear albedo as colour (default: sRGB-encoded for viewers)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the coefficients and mesh facts as JSON."),
) -> None:
    """Draw a random face from a morphable model and write it as a coloured mesh."""
    from recon_cli.morphable import load_model
    from recon_cli.morphable.sampling import sample_coefficients, srgb_encode
    from recon_cli.mesh.writers import write_mesh

    model = load_model(model_path)
    c = sample_coefficients(model, seed, id_scale, exp_scale, tex_scale, neutral)
    verts, albedo = model.decode(c["id"][None], c["exp"][None], c["tex"][None])
    colors = np.clip(albedo[0], 0, 1) if linear else srgb_encode(albedo[0])
    write_mesh(out, verts[0], model.triangles, colors)
    typer.echo(f"wrote {out} ({model.n_verts} vertices, {model.n_faces} triangles, model {model.name}, seed {seed})")
    if json_out is not None:
        _write_json(json_out, {"out": str(out), "model": model.name, "hash": model.content_hash(), "seed": seed,
                               **{k: [round(float(x), 6) for x in v] for k, v in c.items()}})


def register(app: typer.Typer) -> None:
    model_app.command("info")(info)
    model_app.command("import-ict")(import_ict)
    model_app.command("import-bfm")(import_bfm)
    model_app.command("sample")(sample)
