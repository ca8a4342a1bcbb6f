"""`recon model info|import-ict|import-bfm|sample` (issue 2)."""

from __future__ import annotations

import typer

from recon_cli.cli.groups import model_app  # noqa: F401


def register(app: typer.Typer) -> None:
    pass
