"""Training data: the prepared dataset (``recon prep`` output) as torch samples, the
deterministic train/val split and a resumable, DDP-aware batch sampler.

A sample (dict, one face; ``S`` = ``data.size``):

* ``image``: ``(3, S, S) float32`` RGB in [0, 1] (the aligned crop, resized from the dataset's size);
* ``face_mask`` (P): ``(1, S, S) float32`` 1 on face pixels (mask label > 0), else 0;
* ``region_weight`` (W): ``(1, S, S) float32`` per-pixel weight by label (skin 1.0, eyes 1.5,
  nose 1.5, mouth 1.2 by default; 0 outside the face);
* ``lm68``: ``(68, 2) float32`` detected landmarks, crop pixels at size S (x right, y down,
  origin at the top-left corner of the top-left pixel);
* ``pts21``: ``(21, 2) float32`` manual labels in crop px at size S, NaN where invisible or absent;
* ``lm68_weight``: ``(68,) float32`` weight of each detected landmark in the wing loss: 1, or 0
  when ``data.fallback_lm68`` is false and ``recon prep --roi-fallback`` fitted the face without a
  detection (profiles, where MediaPipe's points are least reliable; the manual labels remain), or
  0 when ``data.lm68_max_disagree`` > 0 and MediaPipe's points miss the face's visible manual
  labels (the 11 of :mod:`train.pts21`, at least 3 visible) by more than that many px at 224 on
  average (the teacher gate: on AFLW profiles MediaPipe's points drift from the labels, median
  6 px at 60–75° and 13 px beyond 90°, against 4 px frontal);
* ``yaw``: ``() float32`` the head-yaw label in the **model's** convention (radians,
  ``−radians(extra.yaw_deg)``, see :mod:`train.losses.pose`; negated by a mirror), NaN when absent;
* ``index``: int, position in the dataset (for logging).

Yaw-balanced sampling (``data.yaw_balance`` = α, off at 0; not in the paper): the benchmark that
judges the model (AFLW2000-3D) averages its NME over three |yaw| bins with equal weight, while
AFLW's training faces are mostly frontal. :func:`yaw_bin_weights` gives each labelled face a
sampling weight ∝ (its bin's share)^−α (bins 0–30°, 30–60°, ≥ 60° of ``|extra.yaw_deg|``), scaled so
the labelled faces' mean weight is 1; faces without a label keep weight 1. α = 1 draws the three
bins equally often. The sampler then draws each epoch with replacement by these weights.

Bad samples (missing/corrupt crop or mask, NaN/out-of-range landmarks) are logged once with the
file and the reason and come back as ``None``; :func:`collate_skip_bad` drops them, so a long run
never stops on one bad file. The sampler's state is (epoch, batch index): ``--resume`` restarts
mid-epoch with exactly the same data order.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from recon_cli.errors import InputError
from recon_cli.eval.nme import yaw_bin as protocol_yaw_bin
from train.augment import AugmentSettings, apply, random_transform
from train.pts21 import USED, weights_21x68
from train.step import REF_SIZE  # the teacher gate's threshold is in px of a 224 crop, like the wing loss

log = logging.getLogger("recon.train.data")

N_LABELS = 5  # 0 out, 1 skin, 2 eyes, 3 nose, 4 mouth
_W21 = weights_21x68().astype(np.float64)  # (21, 68): AFLW points from the 68 landmarks (train.pts21)


# ---------------------------------------------------------------------------------------- manifest
def load_entries(dataset_dir: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(dataset.json header, manifest entries)`` of a prepared dataset.

    Uses the front-end's reader :func:`train.dataset_format.load_manifest` (crop/mask become
    absolute paths); raises :class:`InputError` naming the folder when it is not a prepared dataset.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise InputError(f"dataset folder not found: {root}",
                         hint="prepare one with `recon prep IMAGES --out DATASET` and pass --data DATASET")
    if not (root / "dataset.json").is_file() or not (root / "manifest.jsonl").is_file():
        raise InputError(f"{root} is not a prepared dataset: dataset.json and manifest.jsonl expected",
                         hint="create it with `recon prep IMAGES --out DATASET`")
    header, entries = _read_manifest(root)
    if not entries:
        raise InputError(f"{root}/manifest.jsonl lists no samples",
                         hint="check the prep report (report.json, skipped.jsonl): no face was found?")
    return header, entries


def _read_manifest(root: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from recon_cli.face.align import similarity_scale
    from train.dataset_format import load_manifest

    header, samples = load_manifest(root)
    return header, [{"id": x.id, "source": x.source, "crop": x.crop, "mask": x.mask, "lm68": x.lm68,
                     "scale": similarity_scale(x.M), "extra": x.extra or {}} for x in samples]


def source_scale(entries: list[dict[str, Any]], indices: list[int], size: int, prep_size: int) -> float | None:
    """Median crop px per source px of the faces ``indices`` at the encoder's input ``size``:
    each crop's alignment scale (prep's ``M``, at ``prep_size``) times ``size / prep_size``.
    Recorded in the weights (``meta["source_scale"]``) so that the runtime can bring sharper photos
    to this resolution (:class:`recon_cli.face.align.AlignConfig`); None without entries."""
    vals = [entries[i]["scale"] for i in indices if entries[i].get("scale")]
    return float(np.median(vals)) * size / prep_size if vals else None


# ---------------------------------------------------------------------------------------- split
def split_ids(ids: list[str], val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Deterministic train/val split by a hash of each id: ``(train indices, val indices)``.

    An id's side depends only on (id, seed), never on the other ids or their order, so adding
    samples to a dataset never moves existing ones between train and val.
    """
    train, val = [], []
    for i, sid in enumerate(ids):
        h = hashlib.sha1(f"{seed}:{sid}".encode()).digest()
        u = int.from_bytes(h[:8], "big") / 2.0**64
        (val if u < val_fraction else train).append(i)
    if val_fraction > 0 and not val and len(train) > 1:  # tiny datasets: hold out at least one
        val.append(train.pop())
    return train, val


def load_split(dataset: str | Path, max_samples: int = 0, val_fraction: float = 0.05, split_seed: int = 0):
    """``(header, entries, train indices, val indices)``: a prepared dataset truncated to its first
    ``max_samples`` (0: all) and split by :func:`split_ids`, as ``recon train`` does."""
    header, entries = load_entries(dataset)
    if max_samples > 0:
        entries = entries[:max_samples]
    train, val = split_ids([str(e.get("id", i)) for i, e in enumerate(entries)], val_fraction, split_seed)
    return header, entries, train, val


def training_split(dataset: str | Path, meta: dict, flag: str):
    """``(header, entries, train indices)`` of ``dataset`` as the training config recorded in a
    checkpoint's ``meta`` split it (:func:`load_split`); ``flag`` names the option in the message
    when ``dataset`` is not a prepared dataset."""
    data = (meta.get("config") or {}).get("data") or {}
    if not (Path(dataset) / "manifest.jsonl").is_file():
        raise InputError(f"{flag} {dataset}: not a prepared dataset (no manifest.jsonl)",
                         hint="pass the folder `recon prep` made for the weights' training run")
    header, entries, train, _ = load_split(dataset, int(data.get("max_samples", 0)), float(data.get("val_fraction", 0.05)),
                                           int(data.get("split_seed", 0)))
    return header, entries, train


# ---------------------------------------------------------------------------------------- dataset
class FaceDataset(Dataset):
    """Samples of a prepared dataset (see the module docstring for the sample fields)."""

    def __init__(self, root: str | Path, entries: list[dict[str, Any]], size: int,
                 label_weights: tuple[float, float, float, float] = (1.0, 1.5, 1.5, 1.2),
                 src_size: int | None = None, use_pts21: bool = True, augment: AugmentSettings | None = None,
                 seed: int = 0, fallback_lm68: bool = True, lm68_max_disagree: float = 0.0):
        self.root, self.entries, self.size = Path(root), entries, int(size)
        self.lm68_max_disagree = float(lm68_max_disagree)
        self.src_size, self.use_pts21 = src_size, use_pts21
        self.augment, self.seed = augment if augment is not None and augment.active else None, int(seed)
        self.fallback_lm68 = bool(fallback_lm68)
        self.lut = np.array([0.0, *label_weights], dtype=np.float32)  # label → weight
        self._warned: set[int] = set()
        self.n_bad = 0

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any] | None:
        """``dataset[i]``: sample i as stored; ``dataset[(i, epoch)]``: augmented (when the
        dataset has augmentation settings) with the transform drawn for that sample and epoch."""
        i, epoch = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (int(key), None)
        e = self.entries[i]
        try:
            return self._load(i, e, epoch)
        except BadSample as err:
            if i not in self._warned:
                self._warned.add(i)
                self.n_bad += 1
                log.warning("skipping bad sample %s: %s", err.file, err.reason)
            return None

    def _load(self, i: int, e: dict[str, Any], epoch: int | None = None) -> dict[str, Any]:
        crop_path, mask_path = self.root / str(e.get("crop", "")), self.root / str(e.get("mask", ""))
        img = cv2.imread(str(crop_path), cv2.IMREAD_COLOR) if crop_path.is_file() else None
        if img is None:
            raise BadSample(crop_path, "crop missing or not a readable image")
        labels = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED) if mask_path.is_file() else None
        if labels is None:
            raise BadSample(mask_path, "mask missing or not a readable image")
        if labels.ndim == 3:
            labels = labels[..., 0]
        if labels.shape[:2] != img.shape[:2]:
            raise BadSample(mask_path, f"mask is {labels.shape[1]}x{labels.shape[0]}, crop is {img.shape[1]}x{img.shape[0]}")
        if img.shape[0] != img.shape[1]:
            raise BadSample(crop_path, f"crop is not square ({img.shape[1]}x{img.shape[0]})")
        if int(labels.max(initial=0)) >= N_LABELS:
            raise BadSample(mask_path, f"mask label {int(labels.max())} outside 0..{N_LABELS - 1}")
        src = img.shape[0]
        lm = _points(e.get("lm68"), 68)
        if lm is None or not np.isfinite(lm).all():
            raise BadSample(crop_path, "lm68 missing, not 68×2 or not finite")
        if np.abs(lm).max() > 4 * src:
            raise BadSample(crop_path, "lm68 far outside the crop")
        extra = e.get("extra") or {}
        pts21 = _points(extra.get("pts21"), 21) if self.use_pts21 else None
        lm_w = 0.0 if not self.fallback_lm68 and extra.get("face_source") == "roi-fallback" else 1.0
        if lm_w and self.lm68_max_disagree > 0 and pts21 is not None:
            d = teacher_disagreement(lm, pts21)
            if d is not None and d * REF_SIZE / src > self.lm68_max_disagree:
                lm_w = 0.0
        yaw = -math.radians(float(extra["yaw_deg"])) if extra.get("yaw_deg") is not None else math.nan
        s = self.size / src
        if src != self.size:
            img = cv2.resize(img, (self.size, self.size), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
            labels = cv2.resize(labels, (self.size, self.size), interpolation=cv2.INTER_NEAREST)
        lm = lm * s
        pts21 = pts21 * s if pts21 is not None else np.full((21, 2), np.nan)
        if self.augment is not None and epoch is not None:
            M, flip = random_transform(np.random.default_rng([self.seed, epoch, i]), self.size, self.augment)
            img, labels, p = apply(img, labels, {"lm68": lm, "pts21": pts21}, M, flip)
            lm, pts21 = p["lm68"], p["pts21"]
            if flip:
                yaw = -yaw
        rgb = np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1), dtype=np.float32) / 255.0
        labels = labels.astype(np.int64)
        return {
            "image": torch.from_numpy(rgb),
            "face_mask": torch.from_numpy((labels > 0).astype(np.float32)[None]),
            "region_weight": torch.from_numpy(self.lut[labels][None]),
            "lm68": torch.from_numpy(lm.astype(np.float32)),
            "pts21": torch.from_numpy(pts21.astype(np.float32)),
            "lm68_weight": torch.full((68,), lm_w),
            "yaw": torch.tensor(yaw, dtype=torch.float32),
            "index": i,
        }


class BadSample(Exception):
    def __init__(self, file: Path, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file, self.reason = file, reason


def teacher_disagreement(lm68: np.ndarray, pts21: np.ndarray) -> float | None:
    """Mean distance (px of the crop they are in) between the manual labels ``pts21 (21, 2)``
    (NaN = invisible) and the same points predicted from the detected ``lm68 (68, 2)`` through
    :mod:`train.pts21`'s mapping, over the visible used points; None when fewer than 3 are visible."""
    vis = USED & np.isfinite(pts21).all(1)
    if vis.sum() < 3:
        return None
    pred = _W21 @ np.asarray(lm68, np.float64)
    return float(np.linalg.norm(pred[vis] - pts21[vis], axis=1).mean())


def _points(value, n: int) -> np.ndarray | None:
    """JSON list of ``n`` [x, y] (None/null = NaN) → ``(n, 2) float64`` or None if malformed."""
    if value is None:
        return None
    try:
        arr = np.array([[np.nan if v is None else v for v in p] for p in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr if arr.shape == (n, 2) else None


def collate_skip_bad(samples: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Stack samples, dropping the ``None`` (bad) ones; ``None`` when none is left.

    Returns ``image (B,3,S,S)``, ``face_mask``/``region_weight (B,1,S,S)``, ``lm68 (B,68,2)``, ``lm68_weight (B,68)``,
    ``pts21 (B,21,2)``, ``yaw (B,)`` (NaN = no label), ``index (B,) int64`` and ``n_bad`` (int, samples dropped).
    """
    good = [s for s in samples if s is not None]
    if not good:
        return None
    out = {k: torch.stack([s[k] for s in good])
           for k in ("image", "face_mask", "region_weight", "lm68", "lm68_weight", "pts21", "yaw")}
    out["index"] = torch.tensor([s["index"] for s in good], dtype=torch.int64)
    out["n_bad"] = len(samples) - len(good)
    return out


# ---------------------------------------------------------------------------------------- sampler
def yaw_bins(yaw_deg: np.ndarray) -> np.ndarray:
    """AFLW2000-3D |yaw| bins of labels in degrees (either sign), the evaluation's own
    :func:`recon_cli.eval.nme.yaw_bin` (≤ 30, (30, 60], > 60 → 0, 1, 2); −1 where NaN (no label)."""
    y = np.asarray(yaw_deg, dtype=np.float64)
    return np.where(np.isfinite(y), protocol_yaw_bin(np.nan_to_num(y)), -1)


def yaw_bin(yaw_deg: float | None) -> int:
    """:func:`yaw_bins` of one label; ``None`` (absent) is −1."""
    return int(yaw_bins(np.nan if yaw_deg is None else float(yaw_deg)))


def yaw_bin_weights(entries: list[dict[str, Any]], indices: list[int], alpha: float) -> np.ndarray | None:
    """Sampling weights ``(len(indices),) float64`` that balance the |yaw| bins (module docstring).

    ``None`` when ``alpha`` is 0 or no entry carries ``extra.yaw_deg`` (uniform sampling)."""
    if alpha <= 0:
        return None
    yaws = [(entries[i].get("extra") or {}).get("yaw_deg") for i in indices]
    bins = yaw_bins(np.array([np.nan if y is None else y for y in yaws], dtype=np.float64))
    lab = bins >= 0
    if not lab.any():
        return None
    counts = np.bincount(bins[lab], minlength=3).astype(np.float64)
    share = counts / counts.sum()
    per_bin = np.zeros_like(share)
    per_bin[counts > 0] = share[counts > 0] ** -alpha  # empty bins are never indexed
    w = np.ones(len(indices))
    w[lab] = per_bin[bins[lab]]
    w[lab] /= w[lab].mean()
    return w


@dataclass
class SamplerState:
    epoch: int = 0
    batch: int = 0  # batches of this epoch already consumed


class ResumableBatchSampler:
    """Epoch-seeded permutation, sharded across DDP ranks, batched; restartable mid-epoch.

    Each epoch ``e`` shuffles ``indices`` with ``np.random.default_rng([seed, e])`` (the same on
    every rank), pads it by wrapping to a multiple of ``world`` (as ``DistributedSampler`` does) and
    gives rank ``r`` the items ``r, r+world, …``. All ranks get the same number of batches.
    ``state`` (epoch, batch) says where iteration starts; the trainer advances it as batches are
    consumed (not as they are prefetched), so a checkpoint records the exact data position.
    With ``weights`` ((len(indices),), e.g. :func:`yaw_bin_weights`), each epoch instead draws
    ``len(indices)`` items with replacement in proportion to them, from the same per-epoch seed.
    """

    def __init__(self, indices: list[int], batch_size: int, seed: int = 0, rank: int = 0, world: int = 1,
                 shuffle: bool = True, drop_last: bool = True, tag_epoch: bool = False,
                 weights: np.ndarray | None = None):
        if not indices:
            raise InputError("the training split is empty", hint="use more samples or a smaller data.val_fraction")
        self.indices, self.batch_size, self.seed = list(indices), int(batch_size), int(seed)
        self.rank, self.world, self.shuffle = rank, world, shuffle
        if weights is not None and (len(weights) != len(self.indices) or not np.all(np.asarray(weights) >= 0)
                                    or not np.sum(weights) > 0):
            raise ValueError("sampler weights must be one non-negative weight per index, not all zero")
        self.p = None if weights is None else np.asarray(weights, np.float64) / np.sum(weights)
        self.tag_epoch = tag_epoch  # yield (index, epoch) pairs: per-epoch augmentation draws
        per_rank = math.ceil(len(self.indices) / world)
        # drop the last partial batch unless it is the only one (tiny datasets)
        self.drop_last = drop_last and per_rank >= batch_size
        self.per_rank = per_rank
        self.state = SamplerState()

    def __len__(self) -> int:
        """Batches per epoch (per rank)."""
        return self.per_rank // self.batch_size if self.drop_last else math.ceil(self.per_rank / self.batch_size)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        idx = np.asarray(self.indices)
        rng = np.random.default_rng([self.seed, epoch])
        if self.p is not None:
            idx = idx[rng.choice(len(idx), size=len(idx), replace=True, p=self.p)]
        elif self.shuffle:
            idx = idx[rng.permutation(len(idx))]
        total = self.per_rank * self.world
        if total > len(idx):
            idx = np.concatenate([idx, idx[: total - len(idx)]])
        mine = idx[self.rank::self.world].tolist()
        return [mine[b * self.batch_size:(b + 1) * self.batch_size] for b in range(len(self))]

    def __iter__(self) -> Iterator[list[int] | list[tuple[int, int]]]:
        e = self.state.epoch
        for b in self.epoch_batches(e)[self.state.batch:]:
            yield [(i, e) for i in b] if self.tag_epoch else b
