"""Helpers shared by the command modules."""

from __future__ import annotations

from recon_cli.errors import NotBuiltError


def not_built(command: str, issue: str) -> None:
    raise NotBuiltError(f"`recon {command}` is not built yet in this version ({issue})")
