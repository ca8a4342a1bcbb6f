"""`recon pack` / `recon unpack`: move a prepared dataset as size-capped parts (train/pack.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console


def register(app: typer.Typer) -> None:
    @app.command("pack")
    def pack_cmd(
        dataset: Path = typer.Argument(..., help="Prepared dataset folder (from `recon prep`)."),
        out: Path = typer.Argument(..., help="Folder to write part-NNN.tar and pack.json into (new or empty)."),
        part_mib: float = typer.Option(30.0, "--part-mib", min=0.25, help="Largest part, MiB (tar headers included)."),
        quality: Optional[int] = typer.Option(None, "--quality", min=1, max=100, help="Re-encode the crops at this JPEG quality (prep writes 95; 85 is ~1.7x smaller). Default: copy them as they are."),
        json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the index (parts, sizes, SHA-256) to this file."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Split a prepared dataset into self-contained parts of at most --part-mib each, for a machine reached through a per-transfer size cap (a rented or lent GPU).

        Each part holds its samples' crops, masks and manifest lines plus the dataset header, so parts can travel one at a time, in any order; `recon unpack` puts them back together.

        Example: recon pack data/aflw PACK --part-mib 30 --quality 85
        """
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from recon_cli.atomic import atomic_write_text
        from train.pack import pack

        with Progress(TextColumn("[bold]pack"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      disable=quiet, transient=False) as bar:
            task = bar.add_task("", total=None)
            index = pack(dataset, out, part_bytes=int(part_mib * 2**20), jpeg_quality=quality,
                         on_sample=lambda done, total: bar.update(task, completed=done, total=total))
        con = Console()
        sizes = ", ".join(f"{p['bytes'] / 2**20:.1f}" for p in index["parts"])
        con.print(f"[bold]{index['samples']}[/] samples in [bold]{len(index['parts'])}[/] parts "
                  f"({index['bytes'] / 2**20:.1f} MiB: {sizes} MiB) → {out}")
        con.print(f"unpack with: recon unpack {out} --out DATASET")
        if json_out:
            atomic_write_text(json_out, json.dumps(index, indent=2) + "\n")

    @app.command("unpack")
    def unpack_cmd(
        parts: List[Path] = typer.Argument(..., help="part-NNN.tar files, or folders holding them (in any order; more can follow later)."),
        out: Path = typer.Option(..., "--out", "-o", help="Dataset folder to create or add to."),
        json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the summary to this file."),
    ) -> None:
        """Unpack `recon pack` parts into a prepared dataset folder. Resumable and idempotent: samples already in the folder are skipped, so parts can be unpacked as they arrive and an interrupted unpack is simply run again.

        A part is checked against the SHA-256 in the pack.json beside it, when there is one.

        Example: recon unpack PACK --out data/aflw
        """
        from recon_cli.atomic import atomic_write_text
        from train.pack import unpack

        con = Console()
        summary = unpack(parts, out, on_part=lambda f, added, skipped: con.print(
            f"{f.name}: {added} added" + (f", {skipped} already present" if skipped else "")))
        con.print(f"[bold]{summary['samples']}[/] samples in {out} ({summary['added']} added from {summary['parts']} parts)")
        if json_out:
            atomic_write_text(json_out, json.dumps(summary, indent=2) + "\n")
