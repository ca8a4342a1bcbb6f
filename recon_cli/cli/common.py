"""Helpers shared by the command modules."""

from __future__ import annotations

from enum import Enum

from recon_cli.errors import NotBuiltError


def not_built(command: str, issue: str) -> None:
    raise NotBuiltError(f"`recon {command}` is not built yet in this version ({issue})")


class Backend(str, Enum):
    """Encoder runtime choice shared by `recon run`, `recon bench run` and `recon eval`."""

    auto = "auto"
    torch = "torch"
    onnx = "onnx"
    tensorrt = "tensorrt"
