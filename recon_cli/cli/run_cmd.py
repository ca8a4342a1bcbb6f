"""`recon run` (not built yet)."""

from __future__ import annotations

import typer

from recon_cli.cli.common import not_built


def register(app: typer.Typer) -> None:
    @app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def run(ctx: typer.Context) -> None:
        """Not built yet."""
        not_built("run", "see the open issues")
