"""Real face crops for parity checks and int8 calibration.

Sources, in order of preference:

1. ``source`` given (``--calib``): a prepared dataset folder (``recon prep``: its images are
   already aligned crops), any folder of face-crop images (searched recursively), or a
   ``.npy``/``.npz`` array of crops ``(N, 3, S, S)`` float32 in [0, 1] or ``(N, S, S, 3)`` uint8;
2. otherwise the development data (``../shared/data``): the Deep3DFaceRecon example photos
   aligned with their 5-point landmarks by the front-end's similarity alignment
   (:mod:`recon_cli.face.align`, the crops the encoder sees at run time), then
   AFLW training crops (already face-centred, 120 px) resized to S.

Output: ``(N, 3, S, S) float32`` RGB in [0, 1] (the encoder input contract).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon_cli.errors import InputError
from recon_cli.paths import data_dir

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

def _cv2():
    import cv2

    return cv2


def _read_rgb(path: Path) -> np.ndarray:
    cv2 = _cv2()
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot read image {path}", hint="pass a folder of .jpg/.png face crops")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _to_chw(rgb: np.ndarray, size: int) -> np.ndarray:
    cv2 = _cv2()
    if rgb.shape[:2] != (size, size):
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if rgb.shape[0] > size else cv2.INTER_LINEAR)
    return (rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)


def align_5pt(rgb: np.ndarray, pts5: np.ndarray, size: int = 224) -> np.ndarray:
    """Align ``rgb (H, W, 3) uint8`` with its 5 points ``(5, 2)`` px (eyes, nose tip, mouth
    corners, image-left first) by the front-end's similarity alignment
    (:func:`recon_cli.face.align.align_face`, the template the encoder is trained on);
    returns ``(size, size, 3) uint8``."""
    from recon_cli.face.align import AlignConfig, align_face

    return align_face(rgb, np.asarray(pts5, np.float64), AlignConfig(size=size, border="replicate")).crop


def _from_array(path: Path, size: int) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
        arr = data[data.files[0]] if hasattr(data, "files") else data
    except Exception as e:
        raise InputError(f"{path} is not a readable .npy/.npz crop array: {e}") from None
    arr = np.asarray(arr)
    if arr.ndim == 4 and arr.shape[-1] == 3:
        arr = arr.transpose(0, 3, 1, 2)
    if arr.ndim != 4 or arr.shape[1] != 3 or arr.shape[2:] != (size, size):
        raise InputError(f"{path}: crops have shape {arr.shape}, expected (N, 3, {size}, {size}) or (N, {size}, {size}, 3)")
    arr = arr.astype(np.float32) / (255.0 if arr.dtype == np.uint8 else 1.0)
    return np.ascontiguousarray(arr)


def _images_in(folder: Path, limit: int) -> list[Path]:
    out = []
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith("."):
            out.append(p)
            if len(out) >= limit:
                break
    return out


def _dev_crops(n: int, size: int) -> list[np.ndarray]:
    root = data_dir()
    if root is None:
        return []
    crops: list[np.ndarray] = []
    d3 = root / "faces" / "deep3d-examples"
    for img in sorted(d3.glob("*.jpg")) if d3.is_dir() else []:
        if len(crops) >= n:
            break
        txt = img.with_suffix(".txt")
        if txt.is_file():
            pts = np.loadtxt(txt).reshape(-1, 2)[:5]
            crops.append(_to_chw(align_5pt(_read_rgb(img), pts, size), size))
    aflw = root / "aflw-train" / "images"
    if len(crops) < n and aflw.is_dir():
        for img in _images_in(aflw, n - len(crops)):
            crops.append(_to_chw(_read_rgb(img), size))
    return crops


def load_crops(source: str | Path | None = None, n: int = 16, size: int = 224) -> np.ndarray:
    """Up to ``n`` real face crops as ``(N, 3, size, size) float32`` RGB in [0, 1].

    ``source``: a folder of crop images (e.g. a ``recon prep`` dataset), or a ``.npy``/``.npz``
    crop array; ``None``: the development data (see the module docstring). Raises
    :class:`InputError` when nothing usable is found.
    """
    if source is not None:
        src = Path(source)
        if not src.exists():
            raise InputError(f"calibration data not found: {src}", hint="pass a folder of aligned face crops (e.g. from `recon prep`) or a .npy array")
        if src.is_file():
            return _from_array(src, size)[:n]
        files = _images_in(src, n)
        if not files:
            raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {src}", hint="pass a folder of aligned face crops (e.g. from `recon prep`)")
        return np.stack([_to_chw(_read_rgb(p), size) for p in files])
    crops = _dev_crops(n, size)
    if not crops:
        raise InputError("no face crops to check or calibrate with: ../shared/data is absent",
                         hint="pass --calib DIR (a folder of aligned face crops, e.g. from `recon prep`) or set RECON_DATA")
    return np.stack(crops)
