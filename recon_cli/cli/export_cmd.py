"""`recon export` (not built yet)."""

from __future__ import annotations

import typer

from recon_cli.cli.common import not_built


def register(app: typer.Typer) -> None:
    @app.command("export", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def export(ctx: typer.Context) -> None:
        """Not built yet."""
        not_built("export", "see the open issues")
