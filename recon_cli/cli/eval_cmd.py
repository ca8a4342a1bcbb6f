"""`recon eval` (not built yet)."""

from __future__ import annotations

import typer

from recon_cli.cli.common import not_built

eval_app = typer.Typer(help="Evaluate a model on a benchmark.", no_args_is_help=True)


@eval_app.command("aflw2000", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def aflw2000(ctx: typer.Context) -> None:
    """AFLW2000-3D landmark NME by yaw bin (not built yet)."""
    not_built("eval aflw2000", "see the open issues")


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
