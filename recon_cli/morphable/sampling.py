"""Random coefficients for a morphable model, and colour encoding for written meshes. Torch-free.

Identity and texture coefficients are N(0, scale²) (bases are in standard deviations).
Expressions depend on the model's kind (``meta["exp_kind"]``): PCA expression spaces (BFM) are
N(0, scale²); blendshape spaces (ICT, weights in [0, 1]) draw ``|N(0, scale²)|`` clipped to
[0, 1] so that every blendshape is applied forwards.
"""

from __future__ import annotations

import numpy as np


def sample_coefficients(model, seed: int = 0, id_scale: float = 1.0, exp_scale: float = 0.3,
                        tex_scale: float = 1.0, neutral: bool = False) -> dict[str, np.ndarray]:
    """``{"id": (K_id,), "exp": (K_exp,), "tex": (K_tex,)}`` float32 coefficient vectors."""
    if neutral:
        return {"id": np.zeros(model.n_id, np.float32), "exp": np.zeros(model.n_exp, np.float32),
                "tex": np.zeros(model.n_tex, np.float32)}
    rng = np.random.default_rng(seed)
    idc = rng.normal(0.0, id_scale, model.n_id)
    exp = rng.normal(0.0, exp_scale, model.n_exp)
    if model.meta.get("exp_kind", "pca") == "blendshapes":
        exp = np.clip(np.abs(exp), 0.0, 1.0)
    tex = rng.normal(0.0, tex_scale, model.n_tex)
    return {"id": idc.astype(np.float32), "exp": exp.astype(np.float32), "tex": tex.astype(np.float32)}


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear RGB in [0, 1] → sRGB-encoded [0, 1] (IEC 61966-2-1), for display colours."""
    x = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
