"""Helpers shared by the command modules."""

from __future__ import annotations

from enum import Enum

from recon_cli.errors import InputError, NotBuiltError


def not_built(command: str, issue: str) -> None:
    raise NotBuiltError(f"`recon {command}` is not built yet in this version ({issue})")


def int_list(text: str, what: str) -> list[int]:
    """A comma-separated option such as ``--batch 1,8`` → ``[1, 8]``; :class:`InputError` naming
    the option when an item is not a positive integer or the list is empty."""
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{what} must be a comma-separated list of integers, got {text!r}", hint=f"e.g. {what} 1,8") from None
    if not vals or min(vals) < 1:
        raise InputError(f"{what} must list positive integers, got {text!r}", hint=f"e.g. {what} 1,8")
    return vals


class Backend(str, Enum):
    """Encoder runtime choice shared by `recon run`, `recon bench run` and `recon eval`."""

    auto = "auto"
    torch = "torch"
    onnx = "onnx"
    tensorrt = "tensorrt"


class SourceRes(str, Enum):
    """`--source-res` of `recon run` and `recon eval aflw2000`
    (:class:`recon_cli.pipeline.reconstruct.Reconstructor`)."""

    train = "train"
    native = "native"


class YawSymmetry(str, Enum):
    """`--yaw-symmetry` of `recon run`, `recon eval aflw2000` and `recon eval calibrate`
    (:mod:`recon_cli.pipeline.symmetry`)."""

    on = "on"
    off = "off"


YAW_SYMMETRY_HELP = ("on = remove the left/right asymmetry the encoder predicts as a function of head yaw (its mean "
                     "over the training faces, recorded in the weights as `yaw_symmetry`; a face's own asymmetry, "
                     "e.g. a wink, stays); off = the encoder's raw coefficients. Weights without the record are "
                     "used as they are.")


SOURCE_RES_HELP = ("train = a photo in which the face is sharper than the encoder's training faces is first resampled "
                   "(area average) to their resolution, the `source_scale` the weights record (the shipped default: "
                   "its training faces were ~77-px photos); native = crop straight from the photo. Weights without a "
                   "recorded scale always crop natively.")
