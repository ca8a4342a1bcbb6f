"""`recon prep`: prepare training data (aligned crops, 68 landmarks, region masks) from images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from recon_cli.errors import InputError


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise InputError(f"--shard {text!r}: expected i/n, e.g. 0/4", hint="shards are numbered 0..n-1") from None
    return i, n


def register(app: typer.Typer) -> None:
    @app.command("prep")
    def prep(
        src: Path = typer.Argument(..., help="Folder of images (searched recursively) or a text file with one image path per line."),
        out: Path = typer.Option(..., "--out", "-o", help="Dataset folder to write (created; an existing one is resumed)."),
        workers: int = typer.Option(1, "--workers", "-w", min=1, help="Worker processes, each with its own MediaPipe graph."),
        shard: str = typer.Option("0/1", "--shard", help="i/n: process every n-th file of the sorted list starting at i."),
        size: int = typer.Option(224, "--size", min=32, help="Crop side in pixels."),
        min_size: float = typer.Option(32.0, "--min-size", help="Skip faces smaller than this (longer side of the 68-point box, original px)."),
        preview: int = typer.Option(0, "--preview", min=0, help="Write DATASET/preview.png with the first N crops, landmarks and masks."),
        parsing: Optional[Path] = typer.Option(None, "--parsing", help="BiSeNet face-parsing checkpoint (79999_iter.pth) to exclude hair, glasses, hats, hands."),
        pts21: Optional[Path] = typer.Option(None, "--pts21", help="AFLW pts21.npy (with roi_box.npy, list.txt beside it): attach the 21 manual points in crop px (and the AFLW yaw label when yaws.npy is beside it)."),
        scale: float = typer.Option(1.0, "--scale", help="Face size factor in the crop (1 = the default model's mean face at the default camera)."),
        border: str = typer.Option("constant", "--border", help="Padding where the crop leaves the image: constant or replicate."),
        roi_fallback: bool = typer.Option(False, "--roi-fallback", help="Pre-cropped images (e.g. AFLW crops): when the detector finds no face, fit the FaceMesh landmark model with the whole image as the face box (recovers profiles)."),
        json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the report to this JSON file."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Prepare a training dataset: detect faces (MediaPipe), align to the 5-point template, write 224×224 crops, 68 landmarks and region masks (format: train/dataset_format.py).

        Resumable: rerun with the same --out to continue (add --preview N to only redraw the preview); bad or face-less files are listed in DATASET/skipped.jsonl with the reason and never stop the run.

        Example: recon prep ../shared/data/aflw-train/images --out data/aflw-prep --workers 2 --pts21 ../shared/data/aflw-train/pts21.npy --roi-fallback --preview 32
        """  # noqa: E501
        from recon_cli.atomic import atomic_write_text
        from train.prep import PrepOptions, run_prep

        if border not in ("constant", "replicate"):
            raise InputError(f"--border {border!r}: expected constant or replicate")
        opts = PrepOptions(size=size, workers=workers, shard=_parse_shard(shard), min_size=min_size,
                           align_scale=scale, border=border, pts21=str(pts21) if pts21 else None,
                           parsing=str(parsing) if parsing else None, preview=preview, roi_fallback=roi_fallback)
        report = run_prep(src, out, opts, progress=not quiet)
        con = Console()
        con.print(f"[bold]processed[/] {report['processed']}  [bold]skipped[/] {report['skipped']} "
                  f"{report['skipped_by_reason'] or ''}  [bold]already done[/] {report['already_done']}")
        con.print(f"{report['images_per_s']} images/s with {workers} worker(s); detection rate {report['detection_rate']}"
                  + (f"; {report['roi_fallback']} faces fitted from the whole image (--roi-fallback)" if roi_fallback else ""))
        con.print(f"dataset: {out}  (skipped files: {out / 'skipped.jsonl'})")
        if preview:
            con.print(f"preview: {out / 'preview.png'}")
        if json_out:
            atomic_write_text(json_out, json.dumps(report, indent=2) + "\n")
