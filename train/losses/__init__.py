"""The paper's losses: each a pure function plus a thin ``nn.Module`` wrapper (kornia style).

* :mod:`.photometric` — region-weighted per-pixel L2 colour distance over the face area;
* :mod:`.landmark` — wing loss on 68 landmarks (+ optional extra labelled points);
* :mod:`.identity` — 1 − cosine of frozen face-recognition embeddings;
* :mod:`.regularisation` — weighted squared norms of the coefficients;
* :mod:`.frequency` — amplitude + phase losses on the orthonormal 2-D DFT;
* :mod:`.pose` — optional hinges on a head-yaw label and on the depth |t_z| (not in the paper; off
  by default);
* :mod:`.total` — weights, options and :func:`compute_losses` (the objective with its ``total``).
"""

from train.losses.frequency import FrequencyLoss, amplitude_loss, frequency_loss, phase_loss, safe_phase
from train.losses.identity import IdentityLoss, build_identity_loss, identity_loss
from train.losses.landmark import LandmarkLoss, extra_landmark_loss, landmark_loss, wing
from train.losses.photometric import PhotometricLoss, photometric_loss
from train.losses.pose import YawLoss, depth_loss, yaw_loss
from train.losses.regularisation import (RegularisationLoss, RegWeights, light_colour_loss, reflectance_loss,
                                         regularisation_loss)
from train.losses.total import (ALL_TERMS, LossOptions, Losses, LossWeights, composite, compute_losses,
                                settings_from_config)

__all__ = [
    "ALL_TERMS", "FrequencyLoss", "IdentityLoss", "LandmarkLoss", "LossOptions", "LossWeights", "Losses",
    "PhotometricLoss", "RegWeights", "RegularisationLoss", "amplitude_loss", "build_identity_loss", "composite",
    "compute_losses", "depth_loss", "extra_landmark_loss", "frequency_loss", "identity_loss", "landmark_loss",
    "light_colour_loss", "phase_loss", "photometric_loss", "reflectance_loss", "regularisation_loss", "safe_phase",
    "settings_from_config", "wing", "YawLoss", "yaw_loss",
]
