"""Atomic file writes: write to a temporary file in the same folder, fsync, then rename.

An interrupted write never leaves a truncated file at the destination path.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from recon_cli.errors import InputError


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import (os.umask is process-wide and not thread-safe to probe later).
_FILE_MODE = 0o666 & ~_read_umask()


def default_file_mode() -> int:
    """File mode a plain ``open()`` would give (mkstemp's files are 0600)."""
    return _FILE_MODE


def _temp_beside(path: Path, prefix: str, suffix: str) -> tuple[int, str]:
    """``mkstemp`` in ``path``'s folder (created if needed); an unwritable destination (a parent
    that is a file, no permission, a full disk) is an :class:`InputError` naming ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    except OSError as e:
        why = "part of its folder path is a file" if isinstance(e, (FileExistsError, NotADirectoryError)) else e.strerror or e
        raise InputError(f"cannot write {path}: {why}",
                         hint="choose an output path in a writable folder (every part of it before the file name "
                              "must be a folder)") from None


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on clean exit it replaces ``path`` atomically."""
    path = Path(path)
    fd, tmp = _temp_beside(path, f".{path.name}.", ".tmp")
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for writers that need a filename (np.savez,
    cv2.imwrite, torch.save); it is renamed onto ``path`` on clean exit.

    ``suffix`` defaults to ``path``'s own suffix so that writers which pick a format from the
    extension still work.
    """
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = _temp_beside(path, f".{path.stem}.", f".tmp{suffix}")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, default_file_mode())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise
