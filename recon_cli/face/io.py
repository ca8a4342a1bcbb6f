"""Reading images for the face front-end (torch-free): RGB uint8 or a clear :class:`InputError`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon_cli.errors import InputError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode ``path`` → ``(H, W, 3) uint8`` RGB (grey and alpha images are converted).

    Raises :class:`InputError` naming the file when it is missing, empty, not a decodable image,
    or a JPEG cut short (OpenCV would silently return a half-grey picture for it).
    """
    import cv2

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read image {path}: {e.strerror or e}", hint="check the path and permissions") from None
    if not data:
        raise InputError(f"image file is empty: {path}", hint="re-copy or remove the file")
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-65536:]:
        raise InputError(f"truncated JPEG (no end-of-image marker): {path}", hint="re-copy or re-download the file")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise InputError(f"not a decodable image: {path}", hint=f"use one of {', '.join(IMAGE_EXTS)} or remove the file")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_rgb_square(path: str | Path, size: int) -> np.ndarray:
    """:func:`read_rgb` of a square image (a prepared crop) at ``(size, size, 3)``: resized by area
    averaging when it was stored at another size (the encoder's input vs the dataset's)."""
    import cv2

    img = read_rgb(path)
    return img if img.shape[0] == size else cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def encode_image(img_rgb: np.ndarray, ext: str = ".jpg", quality: int = 95) -> bytes:
    """RGB (or single-channel) uint8 → encoded bytes (JPEG quality ``quality``, PNG lossless)."""
    import cv2

    arr = cv2.cvtColor(img_rgb, cv2.COLOR_RGB2BGR) if img_rgb.ndim == 3 else img_rgb
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext in (".jpg", ".jpeg") else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(ext, arr, params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {arr.shape} image as {ext}")
    return buf.tobytes()
