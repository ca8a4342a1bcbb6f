"""Build ``samples/face.mp4``: a short, redistributable face video for the README demo.

Source: ``astronaut.png`` (Eileen Collins, NASA photo S94-44849, public domain), the test image
shipped inside scikit-image's wheel (``skimage/data/astronaut.png``). scikit-image is NOT a
dependency of recon; get the image once with::

    pip download --no-deps scikit-image -d /tmp/skimage-wheel
    python samples/make_sample.py --wheel /tmp/skimage-wheel/scikit_image-*.whl

or pass the PNG directly with ``--image astronaut.png``.

The video: 640×480, 25 fps, 3 s (75 frames), mp4v. Every frame is a similarity warp of the photo
(smooth synthetic head motion: in-plane rotation ±10°, sway ±40 px, a slow zoom 0.95–1.15) so the
tracker and the smoother have motion to follow. The script checks that MediaPipe face detection
finds exactly one face in every frame and refuses to write the video otherwise.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

W, H, FPS, SECONDS = 640, 480, 25, 3.0
FACE_CENTRE = (225.0, 125.0)  # astronaut.png pixels: centre of the face (between eyes and mouth)
BASE_SCALE = 1.25              # face about 160 px tall in the 480-px frame at zoom 1


def load_astronaut(image: str | None, wheel: str | None) -> np.ndarray:
    """The source photo as ``(512, 512, 3) uint8`` BGR."""
    if image:
        data = Path(image).read_bytes()
    elif wheel:
        with zipfile.ZipFile(wheel) as z:
            data = z.read("skimage/data/astronaut.png")
    else:
        sys.exit("pass --image astronaut.png or --wheel scikit_image-*.whl (see the module docstring)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.shape[:2] != (512, 512):
        sys.exit("not the scikit-image astronaut.png (expected a 512x512 image)")
    return img


def frame_matrix(t: float) -> np.ndarray:
    """2×3 similarity: photo → video frame at time ``t`` seconds (smooth, periodic-ish motion)."""
    angle = 10.0 * math.sin(2 * math.pi * t / 3.0)
    zoom = 1.05 - 0.10 * math.cos(2 * math.pi * t / 6.0)
    dx = 40.0 * math.sin(2 * math.pi * t / 2.0)
    dy = 15.0 * math.sin(2 * math.pi * t / 1.5)
    M = cv2.getRotationMatrix2D(FACE_CENTRE, angle, BASE_SCALE * zoom)
    M[:, 2] += np.array([W / 2 + dx - FACE_CENTRE[0], H / 2 + dy - FACE_CENTRE[1]])
    return M


def make_frames(photo: np.ndarray) -> list[np.ndarray]:
    n = int(round(FPS * SECONDS))
    return [cv2.warpAffine(photo, frame_matrix(i / FPS), (W, H), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE) for i in range(n)]


def check_faces(frames: list[np.ndarray]) -> list[int]:
    """Indices of frames where MediaPipe face detection does not find exactly one face."""
    import mediapipe as mp

    bad = []
    with mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5) as det:
        for i, f in enumerate(frames):
            res = det.process(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
            if not res.detections or len(res.detections) != 1:
                bad.append(i)
    return bad


def write_video(frames: list[np.ndarray], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".tmp.mp4", dir=out.parent)
    os.close(fd)
    writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    if not writer.isOpened():
        os.unlink(tmp)
        sys.exit("OpenCV cannot write mp4v video here")
    for f in frames:
        writer.write(f)
    writer.release()
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", help="path to astronaut.png")
    ap.add_argument("--wheel", help="path to a scikit-image wheel (the image is read from inside it)")
    ap.add_argument("--out", default=str(Path(__file__).with_name("face.mp4")))
    args = ap.parse_args(argv)
    frames = make_frames(load_astronaut(args.image, args.wheel))
    bad = check_faces(frames)
    if bad:
        sys.exit(f"MediaPipe did not find exactly one face in frames {bad}; adjust the motion")
    write_video(frames, Path(args.out))
    print(f"wrote {args.out}: {len(frames)} frames {W}x{H} @ {FPS} fps, "
          f"{Path(args.out).stat().st_size / 1e6:.2f} MB; one face detected in every frame")


if __name__ == "__main__":
    main()
