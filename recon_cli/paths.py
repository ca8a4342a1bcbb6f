"""Where things live: the package's shipped assets and the development data folder."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS_DIR = PACKAGE_DIR / "morphable" / "assets"
WEIGHTS_DIR = PACKAGE_DIR / "weights"
DEFAULT_MODEL_PATH = ASSETS_DIR / "ict_face.npz"


def data_dir() -> Path | None:
    """The development data folder (``../shared/data``), or None where it is absent.

    Looks at ``$RECON_DATA`` first, then ``<repo>/../shared/data`` relative to this checkout.
    """
    env = os.environ.get("RECON_DATA")
    if env:
        p = Path(env).expanduser()
        return p if p.is_dir() else None
    p = PACKAGE_DIR.parent.parent / "shared" / "data"
    return p if p.is_dir() else None
