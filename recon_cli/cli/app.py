"""`recon` entry point: assembles the command modules and turns user errors into messages."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from recon_cli.errors import ReconError

app = typer.Typer(
    name="recon",
    help="Weakly supervised 3D face reconstruction: train, export to ONNX/TensorRT, run live, evaluate.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

from recon_cli.cli import (  # noqa: E402  (commands register themselves on `app`)
    eval_cmd,
    export_cmd,
    model_cmd,
    pack_cmd,
    prep_cmd,
    render_cmd,
    run_cmd,
    train_cmd,
)
from recon_cli.cli.groups import bench_app, model_app  # noqa: E402

# Each module adds its commands to `app` or to the shared groups; the order here is the
# order of `recon --help`.
for _mod in (train_cmd, export_cmd, run_cmd, eval_cmd, prep_cmd, pack_cmd, model_cmd, render_cmd):
    _mod.register(app)
app.add_typer(model_app, name="model")
app.add_typer(bench_app, name="bench")

err_console = Console(stderr=True)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the app; a :class:`ReconError` becomes a message and an exit code."""
    try:
        app(args=argv, standalone_mode=True)
    except ReconError as e:
        err_console.print(f"[bold red]error:[/] {e.message}", highlight=False)
        if e.hint:
            err_console.print(f"[yellow]fix:[/] {e.hint}", highlight=False)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
