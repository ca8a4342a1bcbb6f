"""A tiny prepared dataset for the trainer tests, made by the real `recon prep` front-end
(MediaPipe detection, 68 points, alignment, region masks) from development-data photos."""

from __future__ import annotations

import shutil
from pathlib import Path

_CACHE: dict[str, Path] = {}


def tiny_dataset(shared_data: Path, root: Path, n: int = 8) -> Path:
    """``n`` faces of ``faces/deep3d-examples`` prepared into ``root/tiny`` (made once per session)."""
    if "tiny" in _CACHE and _CACHE["tiny"].is_dir():
        return _CACHE["tiny"]
    from train.prep import PrepOptions, run_prep

    src = root / "src"
    src.mkdir(parents=True, exist_ok=True)
    for p in sorted((shared_data / "faces" / "deep3d-examples").glob("*.jpg"))[:n]:
        shutil.copy(p, src / p.name)
    out = root / "tiny"
    report = run_prep(src, out, PrepOptions(workers=1), progress=False)
    assert report["processed"] >= n - 1, report
    _CACHE["tiny"] = out
    return out


def copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
