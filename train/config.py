"""The training configuration: one typed dataclass tree with every default in one place.

Loaded with :func:`load_config` (defaults ← YAML file ← dotted overrides such as
``optim.lr=3e-4`` or ``losses.enabled=[photo,wing]``, see :mod:`recon_cli.config`) and saved
beside every run as ``config.yaml`` (the *resolved* config, so a run can be repeated or resumed).

Defaults follow the paper (DESIGN.md): Adam, lr 1e-4, batch 16, 224×224 crops, loss weights
photometric 3.0, wing 2.4e-3 (on the wing loss summed over the 68 landmarks, as Feng et al. define
it; the loss module averages over points, hence ``w_wing = 2.4e-3 × 68``), identity 0.24,
regularisation 4e-4 with ω = (1e-4, 0.8e-4, 1e-1, 1e-2), region weights skin 1.0 / eyes 1.5 /
nose 1.5 / mouth 1.2. The frequency-loss weight is not given by the paper: ``losses.w_fre`` is
chosen by a short ablation (see ``LossConfig.w_fre``).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

from recon_cli.config import load_yaml, save_yaml, to_dict  # noqa: F401  (re-exported)
from recon_cli.errors import InputError

ALL_LOSSES = ("photo", "wing", "per", "reg", "fre")


@dataclass
class DataConfig:
    """Where the prepared dataset is (``recon prep`` output) and how it is split and loaded."""

    path: str = ""  # DATASET folder with dataset.json + manifest.jsonl
    size: int = 224  # training image size S; crops/masks/landmarks are resized from the dataset's size
    val_fraction: float = 0.05  # share of ids held out for validation (deterministic id hash)
    val_max: int = 512  # cap on validation samples evaluated each time (0 = all)
    split_seed: int = 0  # seed of the id hash that splits train/val
    max_samples: int = 0  # use only the first N manifest entries (0 = all): quick runs, tests
    workers: int = 0  # DataLoader worker processes (0 = load in the main process)
    drop_last: bool = True  # drop the last partial batch of an epoch (kept if it is the only one)
    use_pts21: bool = True  # pass the manual 21-point labels (extra.pts21) to the losses when present
    fallback_lm68: bool = True  # use the 68 points of `recon prep --roi-fallback` faces in the wing loss
    # Not in the paper (off = 0): drop a face's 68 teacher points from the wing loss when they miss
    # its visible manual labels by more than this mean distance (px at 224); see train.data.
    lm68_max_disagree: float = 0.0
    # Not in the paper (off = 0): oversample the |yaw| bins 0–30/30–60/≥60° of the AFLW yaw label
    # toward equal shares, weight ∝ share^−α (1 = equal); see train.data.yaw_bin_weights.
    yaw_balance: float = 0.0
    # Augmentation (train split only; train.augment). The paper is silent: defaults are
    # Deep3DFaceRecon's PyTorch training values. 0 switches each off.
    aug_shift: float = 10.0  # random shift, ± px at a 224 crop
    aug_scale: float = 0.1  # random scale 1 ± this
    aug_rotate: float = 10.0  # random in-plane rotation, ± degrees
    aug_flip: float = 0.5  # probability of a horizontal mirror (landmarks renumbered)
    w_skin: float = 1.0  # photometric region weights (mask labels 1..4)
    w_eyes: float = 1.5
    w_nose: float = 1.5
    w_mouth: float = 1.2


@dataclass
class ModelConfig:
    """Encoder and morphable model."""

    morphable: str = ""  # morphable model .npz; "" = the shipped default (ICT-FaceKit)
    arch: str = "resnet50"  # encoder architecture, see recon_cli.encoders.build_encoder
    n_light: int = 9  # 9 = white SH light (paper), 27 = RGB
    pretrained: str = ""  # optional ImageNet backbone weights (torchvision-format state dict)
    init: str = ""  # fine-tune: start the whole encoder from this recon checkpoint (new optimiser, step 0)


@dataclass
class CameraSettings:
    """Pinhole camera of the 224 crop (scaled to ``data.size``); see recon_cli.render.camera.

    By default the dataset's own crop camera (``dataset.json["camera"]``, written by ``recon prep``)
    is used; these values apply when ``from_dataset`` is false or the dataset records none."""

    from_dataset: bool = True
    focal: float = 1015.0
    cx: float = 112.0
    cy: float = 112.0
    distance: float = 1.0


@dataclass
class LossConfig:
    """Which losses are on and their weights/parameters (paper defaults)."""

    enabled: list[str] = field(default_factory=lambda: list(ALL_LOSSES))
    w_photo: float = 3.0
    # The paper's 2.4e-3 applies to the wing loss as Feng et al. define it: a SUM over the landmarks.
    # train.losses.landmark averages over the 68 points, so the same weight is 2.4e-3 × 68 here.
    # (With 2.4e-3 on the mean the photometric term dominates and the geometry drifts: val landmark
    # error 11.9 → 38.8 px in 80 steps, vs 11.9 → 10.9 px with 0.1632; see the report/ablation.)
    w_wing: float = 2.4e-3 * 68
    w_per: float = 0.24
    w_reg: float = 4e-4
    # Not in the paper. Short CPU ablation (480 AFLW crops, ResNet-18 at 96 px, 80 steps, lr 3e-4,
    # val NME of 49 held-out faces; every other setting default): w_fre 0 → 7.36 %, 0.1 → 7.51 %,
    # 1 → 7.98 %, 3 → 8.50 %. At this budget the term never helped, and larger weights hurt; 0.1
    # keeps it active (≈2 % of the total) within noise of 0. Re-run the ablation on a full GPU run.
    w_fre: float = 0.1
    wing_w: float = 10.0
    wing_eps: float = 2.0
    # Not in the paper (off by default): a wing term on the manual AFLW 21-point labels, visible
    # points only, through train.pts21. The shipped model uses 2.4e-3 × 68, the 68-point weight.
    w_pts21: float = 0.0
    # Not in the paper (off by default): a hinge on the AFLW head-yaw label (`extra.yaw_deg`, from
    # the manual 2-D points), |ŷ − y| beyond a margin, radians; train.losses.pose says why.
    w_yaw: float = 0.0
    yaw_margin_deg: float = 5.0
    # Not in the paper (off by default): a hinge on |trans z| beyond depth_limit_m metres (the face
    # nearer/farther than the aligned size); train.losses.pose says why (v1.5's runaway profiles).
    w_depth: float = 0.0
    depth_limit_m: float = 0.25
    reg_id: float = 1e-4
    reg_exp: float = 0.8e-4
    reg_tex: float = 1e-1
    reg_light: float = 1e-2
    fre_amplitude: str = "complex"  # "complex": |F_in − F_r|² (DESIGN); "amplitude": (|F_in| − |F_r|)²
    fre_wrap_phase: bool = False  # wrap the phase difference into (−π, π]
    identity_kind: str = "auto"  # auto (from the checkpoint) | mobilefacenet | iresnet50 | iresnet100
    identity_weights: str = ""  # face-recognition checkpoint; "" = the development-data MobileFaceNet if present


@dataclass
class OptimConfig:
    """Adam (paper: lr 1e-4, batch 16)."""

    lr: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 0.0
    batch_size: int = 16  # per process (DDP: global batch = batch_size × world size)
    epochs: int = 20
    max_steps: int = 0  # stop after this many optimiser steps; > 0 overrides epochs (0 = run all epochs)
    grad_clip: float = 0.0  # max gradient L2 norm (0 = off)
    lr_schedule: str = "constant"  # constant (the paper) | cosine (decay to lr_final × lr over the run)
    lr_final: float = 0.05  # cosine: final learning rate as a fraction of optim.lr
    # moving average of the weights (train.ema): 0 = off (the paper, which is silent on it); e.g.
    # 0.999 averages over about the last 1,000 steps. With it on, validation and the checkpoint's
    # encoder are the average.
    ema_decay: float = 0.0
    # wall-clock budget of the training loop in minutes (0 = none), summed over resumes. The run ends
    # normally (final validation, checkpoint) when it is spent, and the cosine schedule advances by
    # whichever is further along, steps or time, so it reaches lr_final when the budget ends.
    max_minutes: float = 0.0
    # Not in the paper (off): keep the encoder's BatchNorm layers in inference mode while training:
    # normalise with the running statistics of the --init weights and leave them unchanged (their
    # scale and shift are still trained). For fine-tuning at a smaller batch than the weights were
    # trained with (a CPU's batch 16 after a GPU's batch 64), where batch statistics are noisier.
    freeze_bn: bool = False


@dataclass
class RunConfig:
    """Where outputs go and how often things happen (steps are optimiser steps)."""

    project: str = "runs/train"
    name: str = "exp"
    save_every: int = 500  # write checkpoints/last.pt every N steps (and always at the end)
    keep_steps: bool = False  # also keep checkpoints/step_XXXXXXX.pt copies
    log_every: int = 1  # JSONL/CSV log line every N steps
    grid_every: int = 500  # PNG grid (input | render | landmarks) every N steps (0 = only at the end)
    val_every: int = 500  # validation every N steps (0 = only at the end)
    val_at_start: bool = True  # also validate before the first step (the untrained baseline)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # auto (bf16 on GPUs that support it, else fp16; off on CPU) | off | bf16 | fp16
    seed: int = 0
    deterministic: bool = False  # torch.use_deterministic_algorithms (bit-exact resume on CPU)
    resume: bool = False  # continue <project>/<name>/checkpoints/last.pt
    progress: bool = True  # rich progress bar (rank 0)
    threads: int = 0  # torch CPU threads (0 = torch default)
    sync_bn: bool = False  # DDP on CUDA: synchronise BatchNorm statistics across processes


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    camera: CameraSettings = field(default_factory=CameraSettings)
    losses: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.run.project) / self.run.name


def parse_losses(spec: str | list[str]) -> list[str]:
    """``"photo,wing"`` or a list → validated list in canonical order."""
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if str(s).strip()]
    bad = [s for s in items if s not in ALL_LOSSES]
    if bad or not items:
        raise InputError(f"unknown loss name(s) {bad or items!r}; choose from {','.join(ALL_LOSSES)}",
                         hint="e.g. --losses photo,wing,per,reg,fre")
    return [s for s in ALL_LOSSES if s in items]


def _coerce(obj, prefix: str = "") -> None:
    """Convert values to their fields' types in place (YAML reads ``1e-4`` as a string, a CLI
    gives ``--set optim.epochs=3.0``); raises :class:`InputError` naming the key."""
    for f in dataclasses.fields(obj):
        value, key = getattr(obj, f.name), f"{prefix}{f.name}"
        typ = typing.get_type_hints(type(obj))[f.name]
        if dataclasses.is_dataclass(value):
            _coerce(value, key + ".")
            continue
        try:
            if typ is float and isinstance(value, (str, int)) and not isinstance(value, bool):
                value = float(value)
            elif typ is int and not isinstance(value, bool) and isinstance(value, (str, float)):
                if float(value) != int(float(value)):
                    raise ValueError
                value = int(float(value))
            elif typ is bool and isinstance(value, str):
                value = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}[value.lower()]
            elif typ is str and value is None:
                value = ""
            elif typ is str and isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
        except (ValueError, KeyError):
            raise InputError(f"config {key} = {value!r} is not a valid {typ.__name__}") from None
        ok = isinstance(value, list) if typing.get_origin(typ) is list else (
            isinstance(value, typ) and not (typ is not bool and isinstance(value, bool)))
        if not ok:
            raise InputError(f"config {key} = {value!r} should be of type {getattr(typ, '__name__', typ)}")
        setattr(obj, f.name, value)


def validate(cfg: TrainConfig) -> TrainConfig:
    """Coerce types and check values a user could get wrong; raises :class:`InputError` naming the key."""
    if isinstance(cfg.losses.enabled, str):
        cfg.losses.enabled = parse_losses(cfg.losses.enabled)
    _coerce(cfg)
    cfg.losses.enabled = parse_losses(cfg.losses.enabled)
    checks = [
        ("data.size", cfg.data.size >= 32, "an image size of at least 32 px"),
        ("data.val_fraction", 0.0 <= cfg.data.val_fraction < 1.0, "a fraction in [0, 1)"),
        ("optim.batch_size", cfg.optim.batch_size >= 1, "a positive batch size"),
        # a 32-px input leaves the encoder's last BatchNorm one value per channel for one image
        ("optim.batch_size", cfg.optim.batch_size >= 2 or cfg.data.size > 32 or cfg.optim.freeze_bn,
         "at least 2 at data.size 32 (BatchNorm needs more than one value per channel), or a larger data.size"),
        ("optim.lr", cfg.optim.lr > 0, "a positive learning rate"),
        ("optim.epochs", cfg.optim.epochs >= 1 or cfg.optim.max_steps > 0, "epochs ≥ 1 or max_steps > 0"),
        ("optim.lr_schedule", cfg.optim.lr_schedule in ("constant", "cosine"), "constant or cosine"),
        ("optim.lr_final", 0.0 <= cfg.optim.lr_final <= 1.0, "a fraction in [0, 1]"),
        ("optim.ema_decay", 0.0 <= cfg.optim.ema_decay < 1.0, "0 (off) or a decay in (0, 1), e.g. 0.999"),
        ("optim.max_minutes", cfg.optim.max_minutes >= 0, "≥ 0 minutes (0 = no time budget)"),
        ("run.amp", cfg.run.amp in ("auto", "off", "bf16", "fp16"), "auto, off, bf16 or fp16"),
        ("model.n_light", cfg.model.n_light in (9, 27), "9 (white) or 27 (RGB)"),
        ("losses.fre_amplitude", cfg.losses.fre_amplitude in ("complex", "amplitude"), "complex or amplitude"),
        ("run.save_every", cfg.run.save_every >= 0, "≥ 0"),
        ("data.aug_flip", 0.0 <= cfg.data.aug_flip <= 1.0, "a probability in [0, 1]"),
        ("data.aug_scale", 0.0 <= cfg.data.aug_scale < 1.0, "a fraction in [0, 1)"),
        ("data.aug_shift", cfg.data.aug_shift >= 0, "≥ 0 px"),
        ("data.aug_rotate", cfg.data.aug_rotate >= 0, "≥ 0 degrees"),
        ("data.lm68_max_disagree", cfg.data.lm68_max_disagree >= 0, "≥ 0 px (0 = off)"),
        ("data.yaw_balance", 0 <= cfg.data.yaw_balance <= 1, "between 0 (off) and 1 (equal bins)"),
        ("losses.w_yaw", cfg.losses.w_yaw >= 0, "≥ 0"),
        ("losses.yaw_margin_deg", cfg.losses.yaw_margin_deg >= 0, "≥ 0 degrees"),
        ("losses.w_depth", cfg.losses.w_depth >= 0, "≥ 0"),
        ("losses.depth_limit_m", 0 < cfg.losses.depth_limit_m < cfg.camera.distance,
         "> 0 and below camera.distance (metres)"),
    ]
    for key, ok, want in checks:
        if not ok:
            raise InputError(f"config {key} = {_get(cfg, key)!r} is invalid: expected {want}")
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None) -> TrainConfig:
    """Defaults ← YAML ``path`` ← ``overrides`` (dotted keys), validated."""
    return validate(load_yaml(TrainConfig, path, overrides))


def _get(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg
