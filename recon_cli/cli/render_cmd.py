"""`recon model render` and `recon bench render` (issue 3)."""

from __future__ import annotations

import typer

from recon_cli.cli.groups import bench_app, model_app  # noqa: F401


def register(app: typer.Typer) -> None:
    pass
