"""Reading an AFLW2000-3D folder in the official layout.

Layout (``DIR``)::

    imageXXXXX.jpg + imageXXXXX.mat       # .mat: pt3d_68 (3, 68) px, Pose_Para (1, 7) radians first
    AFLW2000-3D.list                       # optional: image names, the row order of the .npy files
    AFLW2000-3D-new.pose.npy               # optional: (N,) yaw in degrees from the AFLW labels
    AFLW2000-3D-Reannotated.pts68.npy      # optional: (N, 2, 68) re-annotated landmarks, px

The ``.npy`` files cover every name of the ``.list`` (2,000 for the full set) and are indexed
**by name**, so a folder holding only part of the images works. Landmarks are in the original
photo's pixel frame: x to the right, y down, origin at the top-left pixel's corner (as the
files store them; ``pt3d_68``'s third row, depth, is not used by the 2-D protocol).

Yaw source: the AFLW labels (``.pose.npy``, the split every published table uses: 1306 / 462 /
232 images for all 2,000) when the file is there, else ``Pose_Para[1]`` converted to degrees.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon_cli.errors import InputError

LIST_FILE = "AFLW2000-3D.list"
POSE_FILE = "AFLW2000-3D-new.pose.npy"
REANNOTATED_FILE = "AFLW2000-3D-Reannotated.pts68.npy"
_NAME = re.compile(r"^image\d{5}\.jpg$")


@dataclass
class AflwSample:
    """One image: ``gt68``: (2, 68) float64 px (the landmark set being evaluated);
    ``yaw_deg``: float degrees (sign as in its source); ``yaw_source``: "aflw-labels" | "pose_para"."""

    name: str
    image_path: Path
    gt68: np.ndarray
    yaw_deg: float
    yaw_source: str
    pose_para_yaw_deg: float


def load_mat(path: Path) -> dict[str, np.ndarray]:
    """``pt3d_68`` (3, 68) and ``Pose_Para`` (7,) from one ``.mat``; InputError if malformed."""
    import scipy.io

    try:
        m = scipy.io.loadmat(str(path))
    except Exception as e:  # scipy raises several types for truncated/garbage files
        raise InputError(f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e})",
                         hint="re-extract the AFLW2000-3D archive; each imageXXXXX.mat must hold pt3d_68 and Pose_Para") from None
    for key in ("pt3d_68", "Pose_Para"):
        if key not in m:
            raise InputError(f"{path}: missing variable {key!r} (found {sorted(k for k in m if not k.startswith('__'))})",
                             hint="this is not an AFLW2000-3D annotation file; use the official release")
    pts = np.asarray(m["pt3d_68"], dtype=np.float64)
    pose = np.asarray(m["Pose_Para"], dtype=np.float64).ravel()
    if pts.shape != (3, 68) or not np.isfinite(pts).all():
        raise InputError(f"{path}: pt3d_68 must be a finite 3×68 array, found shape {pts.shape}",
                         hint="re-extract the AFLW2000-3D archive")
    if pose.size < 3 or not np.isfinite(pose[:3]).all():
        raise InputError(f"{path}: Pose_Para must hold at least pitch, yaw, roll, found {pose.size} values",
                         hint="re-extract the AFLW2000-3D archive")
    return {"pt3d_68": pts, "Pose_Para": pose}


class Aflw2000:
    """An AFLW2000-3D folder. ``landmarks``: "original" (``pt3d_68[:2]``) or "reannotated"."""

    def __init__(self, root: str | Path, landmarks: str = "original"):
        self.root = Path(root).expanduser()
        if landmarks not in ("original", "reannotated"):
            raise InputError(f"--landmarks must be 'original' or 'reannotated', got {landmarks!r}")
        self.landmarks = landmarks
        if not self.root.is_dir():
            raise InputError(f"AFLW2000-3D folder not found: {self.root}",
                             hint="pass --data DIR, the folder holding imageXXXXX.jpg and imageXXXXX.mat files")
        self.names = sorted(p.name for p in self.root.glob("image*.jpg") if _NAME.match(p.name))
        if not self.names:
            raise InputError(f"{self.root}: no imageXXXXX.jpg files found (expected the official AFLW2000-3D layout)",
                             hint="pass --data DIR pointing at the extracted AFLW2000-3D folder")
        missing = [n for n in self.names if not (self.root / n).with_suffix(".mat").is_file()]
        if missing:
            raise InputError(f"{self.root}: {len(missing)} image(s) without a .mat annotation, e.g. {missing[0][:-4]}.mat",
                             hint="each imageXXXXX.jpg needs its imageXXXXX.mat beside it")
        self._index, self._pose, self._re = self._load_side_files()
        if landmarks == "reannotated" and self._re is None:
            raise InputError(f"{self.root}: --landmarks reannotated needs {REANNOTATED_FILE} and {LIST_FILE} beside the images",
                             hint="copy them from 3DDFA's test.configs, or use --landmarks original")

    @property
    def yaw_source(self) -> str:
        return "aflw-labels" if self._pose is not None else "pose_para"

    def _load_side_files(self):
        lst = self.root / LIST_FILE
        have_pose, have_re = (self.root / POSE_FILE).is_file(), (self.root / REANNOTATED_FILE).is_file()
        if not lst.is_file():
            if have_pose or have_re:
                raise InputError(f"{self.root}: {POSE_FILE if have_pose else REANNOTATED_FILE} is present but {LIST_FILE} "
                                 "(the order of its rows) is not", hint=f"put {LIST_FILE} beside it, or remove the .npy files")
            return None, None, None
        order = [ln.strip() for ln in lst.read_text().splitlines() if ln.strip()]
        index = {Path(n).name: i for i, n in enumerate(order)}
        absent = [n for n in self.names if n not in index]
        if absent:
            raise InputError(f"{lst}: {len(absent)} image(s) of the folder are not listed, e.g. {absent[0]}",
                             hint=f"use the {LIST_FILE} that came with the .npy label files")
        pose = self._npy(POSE_FILE, (len(order),)) if have_pose else None
        re_ = self._npy(REANNOTATED_FILE, (len(order), 2, 68)) if have_re else None
        return index, pose, re_

    def _npy(self, fname: str, shape: tuple[int, ...]) -> np.ndarray:
        path = self.root / fname
        try:
            a = np.load(path)
        except Exception as e:
            raise InputError(f"{path}: not a readable .npy file ({e})", hint="re-copy it from 3DDFA's test.configs") from None
        if a.shape != shape:
            raise InputError(f"{path}: expected shape {shape} (one row per name of {LIST_FILE}), found {a.shape}",
                             hint=f"use the {fname} and {LIST_FILE} of the same release")
        return a.astype(np.float64)

    def __len__(self) -> int:
        return len(self.names)

    def sample(self, name: str) -> AflwSample:
        mat = load_mat((self.root / name).with_suffix(".mat"))
        pp_yaw = math.degrees(float(mat["Pose_Para"][1]))
        if self._pose is not None:
            yaw, src = float(self._pose[self._index[name]]), "aflw-labels"
        else:
            yaw, src = pp_yaw, "pose_para"
        if self.landmarks == "reannotated":
            gt = self._re[self._index[name]].copy()
        else:
            gt = mat["pt3d_68"][:2].copy()
        return AflwSample(name=name, image_path=self.root / name, gt68=gt, yaw_deg=yaw, yaw_source=src,
                          pose_para_yaw_deg=pp_yaw)

    def samples(self, limit: int | None = None):
        names = self.names if limit is None else self.names[:limit]
        for n in names:
            yield self.sample(n)
