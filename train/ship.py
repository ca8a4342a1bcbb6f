"""Turn a training checkpoint into shipped encoder weights: encoder only, float16 storage.

    python -m train.ship RUN/checkpoints/last.pt recon_cli/weights/default.pt

The training state (optimiser, data position, RNG) is dropped; the metadata (arch, layout,
input size, morphable model name + hash, resolved training config) is kept, plus the step and
best validation numbers of the source checkpoint under ``extra``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recon_cli.coeffs import CoeffLayout
from recon_cli.encoders.registry import load_checkpoint, read_checkpoint, save_checkpoint
from recon_cli.errors import ReconError


def ship_weights(src: str | Path, dst: str | Path, *, half: bool = True) -> Path:
    """``src`` (a ``recon train`` checkpoint) → ``dst`` (encoder-only, float16 by default)."""
    encoder, meta = load_checkpoint(src)
    state = (read_checkpoint(src, weights_only=False).get("extra", {}) or {}).get("train_state", {}) or {}
    keep = {k: state[k] for k in ("step", "best_val") if k in state}
    return save_checkpoint(dst, encoder, arch=meta["arch"], layout=CoeffLayout(**meta["layout"]), size=meta["size"],
                           model_name=meta["model_name"], model_hash=meta["model_hash"], config=meta.get("config"),
                           extra={"source": Path(src).name, "storage": "float16" if half else "float32", **keep},
                           half=half)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="training checkpoint (.pt)")
    ap.add_argument("dst", type=Path, help="output weights (.pt)")
    ap.add_argument("--fp32", action="store_true", help="keep float32 storage")
    args = ap.parse_args(argv)
    try:
        out = ship_weights(args.src, args.dst, half=not args.fp32)
    except ReconError as e:  # a missing or unreadable checkpoint: the message and its fix, no traceback
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
