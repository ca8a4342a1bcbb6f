"""The coefficient vector the encoder regresses, and how it splits.

Layout (DESIGN.md), dimensions taken from the morphable model::

    coeffs = [ id (n_id) | exp (n_exp) | tex (n_tex) | angles (3) | light (9 or 27) | trans (3) ]

Units and frames (the contract between encoder, renderer, trainer and exporters):

* ``id``, ``exp``, ``tex``: unitless; 1.0 is one standard deviation of the model's basis
  (bases are stored pre-scaled, see :mod:`recon_cli.morphable.model`).
* ``angles``: radians, (pitch, yaw, roll) = rotations about the model's x, y, z axes, composed
  as ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` and applied to model-space vertices.
* ``light``: 9 spherical-harmonic coefficients (white light) or 27 (RGB, channel-major
  ``[r0..r8, g0..g8, b0..b8]``); all-zero means ambient light (see :mod:`recon_cli.render`).
* ``trans``: metres, added to the rotated vertices in model space (x right, y up, z towards
  the camera); the camera frame is defined in :mod:`recon_cli.render.camera`.

Works on NumPy arrays and torch tensors alike (slicing only), so the torch-free runtime uses it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class CoeffLayout:
    n_id: int
    n_exp: int
    n_tex: int
    n_light: int = 9  # 9 = white SH (the paper), 27 = RGB SH

    def __post_init__(self) -> None:
        if self.n_light not in (9, 27):
            raise ValueError(f"n_light must be 9 (white) or 27 (RGB), got {self.n_light}")

    @property
    def sizes(self) -> dict[str, int]:
        return {"id": self.n_id, "exp": self.n_exp, "tex": self.n_tex, "angles": 3,
                "light": self.n_light, "trans": 3}

    @property
    def slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for name, n in self.sizes.items():
            out[name] = slice(start, start + n)
            start += n
        return out

    @property
    def total(self) -> int:
        return sum(self.sizes.values())

    def split(self, coeffs: Any) -> dict[str, Any]:
        """``coeffs: (..., total)`` → dict of views ``(..., n)`` keyed id/exp/tex/angles/light/trans."""
        if coeffs.shape[-1] != self.total:
            raise ValueError(f"coefficient vector has {coeffs.shape[-1]} entries, layout expects {self.total} ({self.sizes})")
        return {k: coeffs[..., s] for k, s in self.slices.items()}

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def for_model(cls, model, n_light: int = 9) -> "CoeffLayout":
        return cls(model.n_id, model.n_exp, model.n_tex, n_light)
