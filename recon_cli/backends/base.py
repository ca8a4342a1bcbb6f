"""The encoder-backend contract shared by the runtime (torch, ONNX Runtime, TensorRT).

A backend turns aligned crops into morphable-model coefficients:

* input ``x: (B, 3, S, S) float32`` NumPy array, RGB, values in [0, 1] (S = ``meta["size"]``,
  224 by default). The ImageNet mean/std normalisation happens *inside* the encoder graph
  (:mod:`recon_cli.encoders`), so every backend takes the same plain input;
* output ``(B, layout.total) float32`` NumPy array in the :class:`recon_cli.coeffs.CoeffLayout`
  order ``[id | exp | tex | angles | light | trans]``.

``meta`` describes where the weights came from and how to interpret the output; the keys
every backend provides (:data:`META_KEYS`):

* ``arch``: encoder architecture name (``"resnet50"``, the edge backbone, ...);
* ``layout``: ``{"n_id", "n_exp", "n_tex", "n_light"}`` (see :func:`layout_from_meta`);
* ``size``: input crop side S in pixels;
* ``model_name`` / ``model_hash``: the morphable model the head was trained for
  (:meth:`recon_cli.morphable.MorphableModel.content_hash`), so the runtime can refuse a
  mismatched model;
* ``precision``: ``"fp32"``, ``"fp16"`` or ``"int8"``;

and, where the weights record it, ``source_scale``: crop px per source px of the training faces
(the median; :class:`recon_cli.face.align.AlignConfig`), which the runtime uses to bring sharper
photos to the training resolution.

ONNX files carry the same keys in ``metadata_props`` (prefixed ``recon.``, values JSON-encoded,
see :func:`encode_metadata` / :func:`decode_metadata`); TensorRT engines carry them in a JSON
sidecar ``<engine>.json``.

This module is torch-free.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, runtime_checkable

import numpy as np

from recon_cli.coeffs import CoeffLayout
from recon_cli.errors import InputError

META_KEYS = ("arch", "layout", "size", "model_name", "model_hash", "precision")
META_PREFIX = "recon."
INPUT_NAME = "image"
OUTPUT_NAME = "coeffs"
INPUT_DOC = ("image: (batch, 3, S, S) float32, RGB, values in [0, 1], NCHW; the ImageNet mean/std "
             "normalisation is part of the graph. coeffs: (batch, total) float32 in the recon "
             "CoeffLayout order [id | exp | tex | angles(rad) | light(SH) | trans(m)].")


@runtime_checkable
class EncoderBackend(Protocol):
    """Callable encoder: ``(B, 3, S, S) float32 [0, 1]`` → ``(B, total) float32``."""

    name: str
    meta: dict[str, Any]

    def __call__(self, x: np.ndarray) -> np.ndarray: ...


def layout_from_meta(meta: dict[str, Any]) -> CoeffLayout:
    """The :class:`CoeffLayout` described by ``meta["layout"]`` (a dict or its JSON string)."""
    lay = meta.get("layout")
    if isinstance(lay, str):
        lay = json.loads(lay)
    if not isinstance(lay, dict):
        raise InputError(f"encoder metadata has no coefficient layout (found {lay!r})",
                         hint="re-export the encoder with `recon export`")
    return CoeffLayout(**{k: int(lay[k]) for k in ("n_id", "n_exp", "n_tex", "n_light") if k in lay})


def check_input(x: np.ndarray, size: int | None, where: str = "encoder") -> np.ndarray:
    """Validate and convert a crop batch to contiguous ``(B, 3, S, S) float32``."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] != 3 or (size and x.shape[2:] != (size, size)):
        want = f"(B, 3, {size}, {size})" if size else "(B, 3, S, S)"
        raise InputError(f"{where}: input has shape {x.shape}, expected {want} RGB float32 in [0, 1]",
                         hint="pass aligned crops from recon_cli.face, channels first")
    return np.ascontiguousarray(x, dtype=np.float32)


def encode_metadata(meta: dict[str, Any]) -> dict[str, str]:
    """``meta`` → string map for ONNX ``metadata_props``: keys prefixed ``recon.``, values JSON."""
    return {META_PREFIX + k: json.dumps(v, sort_keys=True) for k, v in meta.items()}


def decode_metadata(props: dict[str, str]) -> dict[str, Any]:
    """Inverse of :func:`encode_metadata`; keys without the prefix are ignored."""
    out: dict[str, Any] = {}
    for k, v in props.items():
        if k.startswith(META_PREFIX):
            try:
                out[k[len(META_PREFIX):]] = json.loads(v)
            except json.JSONDecodeError:
                out[k[len(META_PREFIX):]] = v
    return out


def check_meta(meta: dict[str, Any], where: str) -> dict[str, Any]:
    """Raise :class:`InputError` if ``meta`` lacks a required key (file not made by recon)."""
    missing = [k for k in ("arch", "layout", "size") if k not in meta]
    if missing:
        raise InputError(f"{where} has no recon metadata {missing}: it was not written by `recon export`",
                         hint="export the encoder with `recon export --weights W.pt --onnx OUT.onnx`")
    meta.setdefault("precision", "fp32")
    meta.setdefault("model_name", None)
    meta.setdefault("model_hash", None)
    return meta


def check_model_match(meta: dict[str, Any], model) -> None:
    """Raise :class:`InputError` when the morphable ``model`` does not fit the encoder head."""
    lay = layout_from_meta(meta)
    if (lay.n_id, lay.n_exp, lay.n_tex) != (model.n_id, model.n_exp, model.n_tex):
        raise InputError(
            f"encoder head ({meta.get('arch')}) predicts id/exp/tex = {lay.n_id}/{lay.n_exp}/{lay.n_tex} coefficients "
            f"but the morphable model {model.name!r} has {model.n_id}/{model.n_exp}/{model.n_tex}",
            hint=f"use the morphable model the encoder was trained with ({meta.get('model_name')}, hash {meta.get('model_hash')})")
