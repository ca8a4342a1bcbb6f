"""`recon train` (not built yet)."""

from __future__ import annotations

import typer

from recon_cli.cli.common import not_built


def register(app: typer.Typer) -> None:
    @app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def train(ctx: typer.Context) -> None:
        """Not built yet."""
        not_built("train", "see the open issues")
