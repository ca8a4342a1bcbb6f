"""Frame sources: videos (whole and truncated), images, folders, unreadable inputs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from recon_cli.errors import InputError
from recon_cli.pipeline.sources import open_source


def test_video_frames_are_rgb_and_counted(shared_data):
    path = shared_data / "videos" / "d11.mp4"
    with open_source(path) as src:
        assert src.kind == "video" and src.fps == pytest.approx(25.0) and src.frames_expected > 0
        frames = []
        for f in src:
            frames.append(f)
            if len(frames) == 5:
                break
    cap = cv2.VideoCapture(str(path))
    ok, bgr = cap.read()
    cap.release()
    assert ok
    np.testing.assert_array_equal(frames[0].image, bgr[..., ::-1])  # RGB order
    assert [f.index for f in frames] == list(range(5))
    assert frames[0].image.dtype == np.uint8 and frames[0].image.shape == (src.height, src.width, 3)
    ts = [f.t for f in frames]
    assert all(b > a for a, b in zip(ts, ts[1:]))


def test_truncated_video_ends_cleanly(shared_data, tmp_path):
    # s18.mp4 keeps its index (moov) at the start: a prefix of the file still opens and decodes
    data = (shared_data / "videos" / "s18.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    with open_source(cut) as src:
        n = sum(1 for _ in src)
        info = src.info()
    assert 0 < n < info["frames_expected"]
    assert info["frames_read"] == n and info["ended_early"] is True


def test_truncated_video_without_index_is_a_clear_error(shared_data, tmp_path):
    # d0.mp4 has its index at the end: the prefix cannot be opened at all
    cut = tmp_path / "noindex.mp4"
    cut.write_bytes((shared_data / "videos" / "d0.mp4").read_bytes()[:100_000])
    with pytest.raises(InputError) as e:
        open_source(cut)
    assert "noindex.mp4" in str(e.value) and "fix:" in str(e.value)


@pytest.mark.parametrize("make,needle", [
    (lambda p: p / "missing.mp4", "not found"),
    (lambda p: (p / "text.mp4").write_text("not a video") and p / "text.mp4", "text.mp4"),
    (lambda p: (p / "empty.mp4").write_bytes(b"") or p / "empty.mp4", "empty"),
    (lambda p: (p / "bad.jpg").write_bytes(b"\xff\xd8garbage") and p / "bad.jpg", "cannot read image"),
    (lambda p: (p / "nofaces").mkdir() or p / "nofaces", "contains no images"),
])
def test_unreadable_sources_raise_input_error(tmp_path, make, needle):
    with pytest.raises(InputError) as e:
        open_source(make(tmp_path))
    assert needle in str(e.value)
    assert e.value.hint  # says what to do


def test_missing_camera_is_a_clear_error():
    with pytest.raises(InputError) as e:
        open_source("97")
    assert "camera" in str(e.value)


def test_folder_skips_unreadable_images(shared_data, tmp_path):
    photos = sorted((shared_data / "faces" / "portraits").iterdir())[:2]
    for i, p in enumerate(photos):
        (tmp_path / f"{i}_{p.name}").write_bytes(p.read_bytes())
    (tmp_path / "1b_corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (tmp_path / "notes.txt").write_text("ignored: not an image extension")
    with open_source(tmp_path) as src:
        frames = list(src)
        assert src.kind == "folder" and src.frames_expected == 3
        assert len(frames) == 2 and [f.index for f in frames] == [0, 1]
        assert [e["name"].endswith("1b_corrupt.jpg") for e in src.errors] == [True]


def test_single_image(shared_data):
    p = sorted((shared_data / "faces" / "portraits").iterdir())[0]
    with open_source(p) as src:
        frames = list(src)
    assert src.kind == "image" and len(frames) == 1 and frames[0].name == p.name
