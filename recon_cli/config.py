"""Typed configuration: dataclasses with every default in one place, loadable from YAML and
overridable from the command line with dotted keys (``--set train.lr=3e-4`` style).

Each package defines its own dataclasses (e.g. ``train.config.TrainConfig``); this module holds
only the machinery: dict ↔ dataclass conversion, YAML I/O and overrides.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from recon_cli.atomic import atomic_write_text
from recon_cli.errors import InputError

T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """YAML with YAML 1.2's booleans: only true/false are bools, so ``run.amp=off`` or
    ``amp: off`` stays the string "off" (YAML 1.1 would read it as False). Bool fields still take
    on/off/yes/no: :func:`from_dict` converts those words for fields typed ``bool``."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in rs if tag != "tag:yaml.org,2002:bool"]
    for ch, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


_BOOL_WORDS = {"yes": True, "no": False, "on": True, "off": False, "true": True, "false": False}


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def to_dict(cfg: Any) -> Any:
    """Dataclass (nested) → plain dict of builtins (Paths become strings)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def from_dict(cls: type[T], data: dict[str, Any], *, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys are an :class:`InputError`."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InputError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        typ = hints[key]
        if dataclasses.is_dataclass(typ) and isinstance(value, dict):
            value = from_dict(typ, value, where=f"{where}.{key}")
        elif typ is bool and isinstance(value, str) and value.lower() in _BOOL_WORDS:
            value = _BOOL_WORDS[value.lower()]
        kwargs[key] = value
    return cls(**kwargs)


def apply_overrides(cfg: T, overrides: list[str] | dict[str, Any]) -> T:
    """Return a copy of ``cfg`` with dotted-key overrides applied.

    ``overrides``: ``["train.lr=3e-4", "losses=[photo,wing]"]`` (values parsed as YAML) or a
    dict ``{"train.lr": 3e-4}``.
    """
    data = to_dict(cfg)
    items = overrides.items() if isinstance(overrides, dict) else (_split(o) for o in overrides)
    for key, value in items:
        node, parts = data, key.split(".")
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                raise InputError(f"config override {key!r}: {p!r} is not a config section")
            node = node[p]
        if parts[-1] not in node:
            raise InputError(f"config override {key!r}: unknown key {parts[-1]!r}; valid keys: {sorted(node)}")
        node[parts[-1]] = value
    return from_dict(type(cfg), data)


def _split(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise InputError(f"config override {item!r} must look like key=value (e.g. optim.lr=1e-4)")
    key, raw = item.split("=", 1)
    return key.strip(), _yaml(raw)


def load_yaml(cls: type[T], path: str | Path | None, overrides: list[str] | dict | None = None) -> T:
    """Defaults of ``cls`` ← YAML file ``path`` (if given) ← ``overrides``."""
    cfg = cls()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"config file not found: {path}")
        try:
            data = _yaml(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise InputError(f"{path} is not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise InputError(f"{path} must hold a mapping of config keys, found {type(data).__name__}")
        cfg = apply_overrides(cfg, _flatten(data))
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    return cfg


def save_yaml(cfg: Any, path: str | Path) -> None:
    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def _flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out
