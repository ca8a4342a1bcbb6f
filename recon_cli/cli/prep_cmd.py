"""`recon prep` (not built yet)."""

from __future__ import annotations

import typer

from recon_cli.cli.common import not_built


def register(app: typer.Typer) -> None:
    @app.command("prep", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def prep(ctx: typer.Context) -> None:
        """Not built yet."""
        not_built("prep", "see the open issues")
