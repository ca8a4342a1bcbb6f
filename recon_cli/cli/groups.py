"""Command groups shared by several command modules (`recon model …`, `recon bench …`)."""

from __future__ import annotations

import typer

model_app = typer.Typer(help="Morphable models: info, import (ICT-FaceKit, Basel), sample, render.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks: print a table and write JSON (--json FILE).", no_args_is_help=True)
