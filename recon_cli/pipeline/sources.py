"""Frame sources for the live pipeline: video files, cameras, images, folders of images, streams.

:func:`open_source` turns what the user typed after ``recon run`` into a :class:`FrameSource`:

* an integer string (``"0"``) → camera index (``cv2.VideoCapture(0)``);
* a URL (``rtsp://``, ``http(s)://``, ``udp://``, ``tcp://``…) → an OpenCV/FFmpeg stream;
* a folder → its images (``.jpg .jpeg .png .bmp .webp .tif .tiff``), sorted by name;
* a file with an image extension → that single image;
* any other file → a video (OpenCV/FFmpeg).

Every source yields :class:`Frame` objects: ``image (H, W, 3) uint8 RGB``, the running index,
a timestamp in seconds (the stream's own clock for videos, wall clock for cameras/streams, index
/ nominal fps for images) and a name. A source that cannot be opened raises
:class:`~recon_cli.errors.InputError` naming the source and the fix. A video that ends early
(truncated file, broken stream) simply stops: :attr:`FrameSource.frames_read` counts what was
read and :attr:`FrameSource.frames_expected` is the container's claim, so the summary can say
``ended early``. An unreadable image inside a folder is recorded in :attr:`FrameSource.errors`
and skipped, never stopping the run.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from recon_cli.errors import InputError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


@dataclass
class Frame:
    """One frame: ``image (H, W, 3) uint8 RGB``; ``index`` counts from 0 in reading order;
    ``t`` seconds; ``name``: file name for images, ``"<source>#<index>"`` otherwise."""

    image: np.ndarray
    index: int
    t: float
    name: str


class FrameSource:
    """Base: iterate to get :class:`Frame` objects; :meth:`close` releases the device/file.

    Attributes:
        kind: ``"video" | "camera" | "stream" | "image" | "folder"``.
        description: what was opened (path, URL, camera index).
        fps: nominal frame rate (0 when unknown).
        frames_expected: frame count claimed by the container/folder (None when unknown/live).
        frames_read: frames delivered so far.
        errors: list of ``{"name", "error"}`` for skipped unreadable images.
        live: True for cameras and streams (no end; Ctrl-C stops them).
    """

    kind = "source"
    live = False

    def __init__(self, description: str):
        self.description = description
        self.fps = 0.0
        self.frames_expected: int | None = None
        self.frames_read = 0
        self.errors: list[dict[str, str]] = []
        self.width = self.height = 0

    def __iter__(self) -> Iterator[Frame]:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def info(self) -> dict:
        return {"kind": self.kind, "source": self.description, "fps": self.fps, "width": self.width,
                "height": self.height, "frames_expected": self.frames_expected, "frames_read": self.frames_read,
                "ended_early": self.ended_early, "unreadable": self.errors}

    @property
    def ended_early(self) -> bool:
        """True when fewer frames were read than the container claimed (truncated/broken)."""
        return bool(self.frames_expected) and self.frames_read < self.frames_expected


class CaptureSource(FrameSource):
    """A ``cv2.VideoCapture``: video file, camera index or stream URL."""

    def __init__(self, target: str | int, kind: str, fix: str):
        super().__init__(str(target))
        self.kind = kind
        self.live = kind in ("camera", "stream")
        self.cap = cv2.VideoCapture(target)
        if not self.cap.isOpened():
            self.cap.release()
            raise InputError(f"cannot open {kind} {target!r}", hint=fix)
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not (0 < self.fps < 1000):
            self.fps = 0.0
        self.width = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        n = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frames_expected = n if (kind == "video" and n > 0) else None
        self._t0 = None

    def read(self) -> np.ndarray | None:
        """Next frame as ``(H, W, 3) uint8`` RGB, or None at the end / on a broken stream."""
        try:
            ok, bgr = self.cap.read()
        except cv2.error:  # corrupt packet in some FFmpeg builds
            return None
        if not ok or bgr is None:
            return None
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def __iter__(self) -> Iterator[Frame]:
        while True:
            img = self.read()
            if img is None:
                return
            i = self.frames_read
            if self.kind == "video":
                pos = self.cap.get(cv2.CAP_PROP_POS_MSEC)
                t = pos / 1e3 if pos and pos > 0 else (i / self.fps if self.fps else float(i) / 30.0)
            else:
                now = time.perf_counter()
                self._t0 = now if self._t0 is None else self._t0
                t = now - self._t0
            self.frames_read += 1
            yield Frame(img, i, t, f"{Path(self.description).name if self.kind == 'video' else self.description}#{i}")

    def close(self) -> None:
        self.cap.release()


class ImageListSource(FrameSource):
    """A single image or a sorted folder of images; unreadable files are skipped and recorded."""

    def __init__(self, paths: list[Path], description: str, kind: str, fps: float = 30.0):
        super().__init__(description)
        self.kind = kind
        self.paths = paths
        self.fps = fps  # nominal: timestamps for smoothing (frames of a folder are treated as a sequence)
        self.frames_expected = len(paths)

    @property
    def ended_early(self) -> bool:
        return False  # skipped images are listed in `errors`, the list itself is complete

    def __iter__(self) -> Iterator[Frame]:
        for p in self.paths:
            img = read_image(p, strict=False)
            if img is None:
                self.errors.append({"name": str(p), "error": "not a readable image"})
                continue
            self.height, self.width = img.shape[:2]
            i = self.frames_read
            self.frames_read += 1
            yield Frame(img, i, i / self.fps, p.name)


def read_image(path: str | Path, strict: bool = True) -> np.ndarray | None:
    """Read an image file as ``(H, W, 3) uint8`` RGB (greyscale/alpha converted).

    ``strict``: raise :class:`InputError` when unreadable (else return None)."""
    path = Path(path)
    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if img is None:
        if strict:
            raise InputError(f"cannot read image {path}", hint="pass a JPEG/PNG/BMP/WebP/TIFF file that opens in an image viewer")
        return None
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def open_source(source: str | int | Path) -> FrameSource:
    """What the user typed → a :class:`FrameSource` (see the module docstring).

    Raises:
        InputError: missing path, empty folder, unreadable image, video or stream that OpenCV
            cannot open, or a camera index with no camera.
    """
    s = str(source).strip()
    if re.fullmatch(r"\d+", s):
        return CaptureSource(int(s), "camera",
                             f"check that camera {s} exists and is free (ls /dev/video*), or pass a video file instead")
    if _URL.match(s):
        return CaptureSource(s, "stream", "check the URL and that the stream is live; OpenCV must be built with FFmpeg")
    path = Path(s).expanduser()
    if not path.exists():
        raise InputError(f"source not found: {s}",
                         hint="pass a video file, an image, a folder of images, a camera index (0) or a stream URL")
    if path.is_dir():
        paths = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
        if not paths:
            raise InputError(f"folder {path} contains no images ({', '.join(IMAGE_EXTS)})",
                             hint="point at a folder of images or at a video file")
        return ImageListSource(paths, str(path), "folder")
    if path.suffix.lower() in IMAGE_EXTS:
        read_image(path)  # fail now with a clear message if unreadable
        return ImageListSource([path], str(path), "image")
    if path.stat().st_size == 0:
        raise InputError(f"video file {path} is empty (0 bytes)", hint="re-copy or re-record the video")
    src = CaptureSource(str(path), "video",
                        f"{path.name} is not a video OpenCV can decode: check the file (ffprobe {path.name}) "
                        "or convert it (ffmpeg -i IN -c:v libx264 OUT.mp4)")
    return src
