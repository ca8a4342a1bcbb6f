"""Yaw symmetry: remove the left/right asymmetry an encoder predicts as a function of head yaw.

**Why.** A person's face does not become lopsided when they turn their head: in a population,
the asymmetry of shape and expression is independent of the head pose, and its mean is zero (the
training data are mirror-augmented, so there is no preferred side). An encoder trained without 3-D
labels does not know that. The shipped v1.9 predicts a strongly yaw-dependent asymmetry: on its
own training split the difference ``browDown_L − browDown_R`` goes from −2.1 at −90° yaw to
+2.2 at +90° (mean |coefficient| 1.4), and on its held-out profiles (|yaw| > 60°) the two mouth
corners sit 13 mm apart in depth on average (the far one forward, the near one back), so that both
project outwards, the far one in front of the profile.

**The correction.** With the model's mirror operators ``P`` (:mod:`recon_cli.morphable.mirror`),
the antisymmetric part of the identity and expression coefficients is ``a = (c − P·c) / 2``. Its
mean over the encoder's own predictions on its training split, as a function of the predicted yaw,
``ā(yaw)``, is fitted as a piecewise-linear odd function (knots every 15°, :data:`KNOTS_DEG`;
constant beyond 90°), and subtracted from every prediction: ``c ← c − ā(yaw)``. What stays is each
face's own asymmetry (a wink, a smirk) and the whole symmetric part; only the part that follows the
head's turn goes. No labels and no benchmark data are used: the table is the mean of the encoder's
outputs (:func:`fit`); ``python -m train.ship --yaw-symmetry-from DATASET`` records it in the
weights as ``meta["yaw_symmetry"]`` (ONNX: ``recon.yaw_symmetry``).

Frames and units: coefficients as :mod:`recon_cli.coeffs` (1.0 = one standard deviation of an
identity mode, or one full blendshape); yaw in degrees, the encoder's own ``angles[1]`` (positive:
the model's +x side turns away from the camera).

NumPy only (the runtime is torch-free).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recon_cli.errors import InputError

KNOTS_DEG = (0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0)  # the odd function's knots (|yaw|, degrees)
META_KEY = "yaw_symmetry"
#: ``Reconstructor(yaw_symmetry=...)`` / ``--yaw-symmetry``
MODES = ("on", "off")


def odd_hat_basis(yaw_deg: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """``yaw (N,)`` degrees → ``(N, K−1)``: ``sign(yaw)·h_k(|yaw|)`` with ``h_k`` the piecewise-linear
    hat at ``knots[k]`` (k ≥ 1; the hat at 0 is left out so that the function is 0 at 0°), the last
    one held at 1 beyond the last knot."""
    yaw = np.asarray(yaw_deg, np.float64).reshape(-1)
    a = np.minimum(np.abs(yaw), knots[-1])
    out = np.zeros((len(yaw), len(knots) - 1))
    for k in range(1, len(knots)):
        rise = np.clip((a - knots[k - 1]) / (knots[k] - knots[k - 1]), 0.0, 1.0)
        fall = np.clip((knots[k + 1] - a) / (knots[k + 1] - knots[k]), 0.0, 1.0) if k + 1 < len(knots) else 1.0
        out[:, k - 1] = np.where(a <= knots[k], rise, fall)
    return out * np.sign(yaw)[:, None]


@dataclass
class YawSymmetry:
    """The fitted mean antisymmetric coefficients ``table (K−1, n_id + n_exp)`` at the knots
    ``knots_deg (K,)`` (the first is 0°); ``faces``: how many predictions it was fitted on."""

    knots_deg: np.ndarray
    table: np.ndarray
    faces: int = 0

    def correction(self, yaw_deg: np.ndarray) -> np.ndarray:
        """``yaw (N,)`` degrees → ``ā(yaw) (N, n_id + n_exp)``."""
        return odd_hat_basis(yaw_deg, self.knots_deg) @ self.table

    def apply(self, coeffs: np.ndarray, layout) -> np.ndarray:
        """``coeffs (N, total)`` → a corrected copy (same dtype): ``id``/``exp`` minus ``ā(yaw)``."""
        out = np.array(coeffs, copy=True)
        if len(out) == 0:
            return out
        parts = layout.split(out)
        corr = self.correction(np.degrees(parts["angles"][:, 1].astype(np.float64)))
        parts["id"][...] -= corr[:, :layout.n_id].astype(out.dtype)
        parts["exp"][...] -= corr[:, layout.n_id:].astype(out.dtype)
        return out

    def to_meta(self) -> dict[str, Any]:
        """JSON-ready (full float precision: the table is the weights' own)."""
        return {"knots_deg": [float(k) for k in self.knots_deg], "table": self.table.tolist(), "faces": int(self.faces),
                "what": "mean antisymmetric id|exp coefficients by predicted yaw (recon_cli/pipeline/symmetry.py)"}

    @classmethod
    def from_meta(cls, meta: dict[str, Any], layout, where: str = "the weights") -> "YawSymmetry":
        """Inverse of :meth:`to_meta`, checked against the coefficient ``layout``."""
        hint = "re-record it with `python -m train.ship --yaw-symmetry-from DATASET W.pt W.pt`, or use --yaw-symmetry off"
        try:
            knots = np.asarray(meta["knots_deg"], np.float64)
            table = np.asarray(meta["table"], np.float64)
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{where}: unreadable {META_KEY} metadata ({type(e).__name__}: {e})", hint=hint) from None
        n = layout.n_id + layout.n_exp
        if (knots.ndim != 1 or len(knots) < 2 or knots[0] != 0 or np.any(np.diff(knots) <= 0)
                or table.shape != (len(knots) - 1, n) or not np.isfinite(table).all()):
            raise InputError(f"{where}: {META_KEY} metadata has knots {knots.tolist()} and a table of shape "
                             f"{table.shape}, expected increasing knots from 0 and ({len(knots) - 1}, {n})", hint=hint)
        return cls(knots_deg=knots, table=table, faces=int(meta.get("faces", 0)))


def antisymmetric(coeffs: np.ndarray, layout, P_id: np.ndarray, P_exp: np.ndarray) -> np.ndarray:
    """``coeffs (N, total)`` → ``(N, n_id + n_exp)``: ``(c − P·c) / 2`` of the identity and expression parts."""
    parts = layout.split(np.asarray(coeffs, np.float64))
    return np.concatenate([(parts["id"] - parts["id"] @ P_id.T) / 2, (parts["exp"] - parts["exp"] @ P_exp.T) / 2], 1)


def fit(coeffs: np.ndarray, layout, P_id: np.ndarray, P_exp: np.ndarray,
        knots_deg=KNOTS_DEG) -> YawSymmetry:
    """Least-squares fit of ``ā(yaw)`` to the encoder's predictions ``coeffs (N, total)`` (its own
    yaw). :class:`InputError` when a knot interval holds no face (the table there would be arbitrary)."""
    knots = np.asarray(knots_deg, np.float64)
    parts = layout.split(np.asarray(coeffs, np.float64))
    yaw = np.degrees(parts["angles"][:, 1])
    H = odd_hat_basis(yaw, knots)
    a = np.minimum(np.abs(yaw), knots[-1])  # beyond the last knot counts for the last interval
    empty = [f"{knots[k - 1]:g}–{knots[k]:g}°" for k in range(1, len(knots))
             if not np.any((a > knots[k - 1]) & (a <= knots[k]))]
    if empty:
        raise InputError(f"no face predicted at |yaw| {', '.join(empty)} among {len(yaw)}: the yaw-symmetry table "
                         "needs faces at every yaw", hint="fit on the whole training split of a dataset with profiles")
    table, *_ = np.linalg.lstsq(H, antisymmetric(coeffs, layout, P_id, P_exp), rcond=None)
    return YawSymmetry(knots_deg=knots, table=table, faces=len(yaw))


def from_backend_meta(meta: dict[str, Any], layout, where: str = "the weights") -> YawSymmetry | None:
    """The table the weights record, or None."""
    m = meta.get(META_KEY)
    return None if m is None else YawSymmetry.from_meta(m, layout, where)
