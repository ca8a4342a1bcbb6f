"""Measure an encoder's yaw-dependent asymmetry on its training split (:mod:`recon_cli.pipeline.symmetry`).

    python -m train.ship --yaw-symmetry-from DATASET W.pt W.pt

encodes every face of ``DATASET``'s training split, as the weights' own config split it
(``data.max_samples``, ``data.val_fraction``, ``data.split_seed``), from its prepared crops (brought
to the encoder's input size by area averaging when the dataset was prepared at another size), and
fits the table :func:`recon_cli.pipeline.symmetry.fit`. It reads no labels: only the encoder's
outputs. About 20 ms per face for a ResNet-18 at 224 on 2 CPU threads (v1.9: 15,081 faces, 5 min).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from recon_cli.errors import InputError


def measure_yaw_symmetry(encoder, meta: dict, dataset: str | Path, *, threads: int | None = None, batch: int = 64,
                         progress: Callable[[int, int], None] | None = None):
    """The encoder's :class:`recon_cli.pipeline.symmetry.YawSymmetry` on ``dataset``'s training split.
    ``encoder``: the torch module the weights load into; ``progress(done, total)``."""
    from recon_cli.backends.torch_backend import TorchBackend
    from recon_cli.coeffs import CoeffLayout
    from recon_cli.face.io import read_rgb_square
    from recon_cli.morphable import load_default_model
    from recon_cli.morphable.mirror import mirror_operators
    from recon_cli.pipeline import symmetry
    from recon_cli.pipeline.reconstruct import Reconstructor
    from train.data import training_split

    _, entries, idx = training_split(dataset, meta, "--yaw-symmetry-from")
    if not idx:
        raise InputError(f"{dataset}: the training split is empty", hint="pass the dataset the weights were trained on")
    model = load_default_model()
    rec = Reconstructor(TorchBackend(encoder, meta, threads=threads), model, yaw_symmetry="off")
    out = []
    for k in range(0, len(idx), batch):
        out.append(rec.encode(np.stack([read_rgb_square(entries[i]["crop"], rec.size) for i in idx[k:k + batch]])))
        if progress:
            progress(min(k + batch, len(idx)), len(idx))
    P_id, P_exp = mirror_operators(model)
    return symmetry.fit(np.concatenate(out), CoeffLayout(**meta["layout"]), P_id, P_exp)
