"""Exponential moving average of the encoder's weights (``optim.ema_decay``; 0 = off, the paper).

The paper trains and ships the raw weights; it says nothing about averaging them. A running
average of the weights over the last few thousand steps is the in-run counterpart of the
"model soups" this project ships (``python -m train.ship A.pt B.pt …``): it smooths the noise of
the last steps of a run at no training cost. Off by default, so the paper's recipe is unchanged.

After every optimiser step ``k`` (counting from 1 in this run, resumes included)::

    d_k = 1 − (1 − ema_decay) / (1 − ema_decay^k)
    ema ← d_k · ema + (1 − d_k) · weights

over every floating-point parameter and buffer (BatchNorm's running mean and variance included);
integer buffers (BatchNorm's batch counters) are copied. This is the exponential average
``Σ_j ema_decay^(k−j) · weights_j`` over the steps of the run, divided by its total weight
``Σ_j ema_decay^(k−j)`` (the bias correction Adam uses for its moments): step ``j`` counts
``ema_decay^(k−j)`` times as much as the last step, at every ``k``, and the weights the run starts
from (``--init``, a random initialisation) do not count at all (``d_1 = 0``). With 0.999 the
average spans about the last 1,000 steps. It is kept in float32.

With it on, validation, grids and the weights in ``checkpoints/last.pt`` (what ``recon eval``,
``recon run``, ``recon export`` and ``python -m train.ship`` read) are the averaged ones; the raw
weights the optimiser works on travel in the checkpoint's training state, so ``--resume``
continues exactly (``python -m train.ship --raw`` ships them instead).
"""

from __future__ import annotations

import copy

import torch


class WeightAverage:
    """The moving average of ``encoder``'s weights: ``module`` is a copy of the encoder (eval mode,
    no gradients) holding the averaged weights; :meth:`update` folds in the current weights."""

    def __init__(self, encoder: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.module = copy.deepcopy(encoder).float().eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self._avg = self.module.state_dict()  # views of the module's tensors, updated in place

    def rate(self) -> float:
        """The decay ``d_k`` the next update uses (see the module docstring)."""
        k = self.updates + 1
        return 1.0 - (1.0 - self.decay) / (1.0 - self.decay ** k)

    @torch.no_grad()
    def update(self, encoder: torch.nn.Module) -> None:
        d = self.rate()
        for name, value in encoder.state_dict().items():
            avg = self._avg[name]
            if avg.is_floating_point():
                avg.mul_(d).add_(value.detach().to(avg.dtype), alpha=1.0 - d)
            else:
                avg.copy_(value)
        self.updates += 1

    def state(self) -> dict:
        return {"decay": self.decay, "updates": self.updates}

    def load(self, weights: dict[str, torch.Tensor], updates: int) -> None:
        """Restore the average from a checkpoint (its weights and update count)."""
        self.module.load_state_dict(weights)
        self.updates = int(updates)
