"""Turn training checkpoints into shipped encoder weights: encoder only, float16 storage.

    python -m train.ship RUN/checkpoints/last.pt recon_cli/weights/default.pt
    python -m train.ship A.pt B.pt C.pt recon_cli/weights/default.pt   # uniform weight average
    python -m train.ship --raw RUN/checkpoints/last.pt raw.pt   # a run with optim.ema_decay: its raw weights
    python -m train.ship --source-scale-from DATASET W.pt W.pt  # record the training faces' resolution
    python -m train.ship --yaw-symmetry-from DATASET W.pt W.pt  # record the yaw-dependent asymmetry to remove

The metadata keeps ``source_scale`` (the training faces' median crop px per source px, which
``recon train`` records; :class:`recon_cli.face.align.AlignConfig`). Weights trained before it was
recorded get it with ``--source-scale-from DATASET``: measured on that prepared dataset's training
split, as the source's own config made it (``data.max_samples``, ``data.val_fraction``,
``data.split_seed``, ``data.size``). Re-shipping a shipped file keeps its own ``extra`` (where it came from).

It also keeps ``yaw_symmetry`` (:mod:`recon_cli.pipeline.symmetry`): the mean left/right asymmetry
the encoder predicts as a function of head yaw, which the runtime removes. ``--yaw-symmetry-from
DATASET`` measures it (:mod:`train.symmetry`: the encoder's own outputs on the training split,
no labels); averaged or re-trained weights need it measured again, since it is the weights' own.

A checkpoint of a run with ``optim.ema_decay`` holds the moving average of the weights as its
encoder (that is what ships by default) and the optimiser's raw weights in its training state;
``--raw`` ships those instead (to compare the two, or average raw weights).

The training state (optimiser, data position, RNG) is dropped; the metadata (arch, layout,
input size, morphable model name + hash, resolved training config of the first source) is kept,
plus the step and best validation numbers of a single source under ``extra``.

Several sources are averaged parameter by parameter, uniformly (a "model soup": Wortsman et al.,
2022), in float32; integer buffers (BatchNorm's batch counters) are taken from the first source.
This is only meaningful for fine-tunes of one common starting point (the averaged weights must lie
in one basin), so every source must share arch, coefficient layout, input size and morphable model;
a shipped float16 file may be one of them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recon_cli.coeffs import CoeffLayout
from recon_cli.encoders.registry import encoder_from_checkpoint, read_checkpoint, save_checkpoint
from recon_cli.errors import InputError, ReconError

_MUST_MATCH = ("arch", "layout", "size", "model_name", "model_hash")


def _load(src: str | Path, raw: bool):
    """``src`` → (encoder, meta, the checkpoint's ``extra``), reading the file once. ``raw``: the
    encoder gets the optimiser's raw weights of a run trained with ``optim.ema_decay``;
    :class:`InputError` when the checkpoint holds none."""
    obj = read_checkpoint(src)
    encoder, meta = encoder_from_checkpoint(obj, src)
    extra = obj.get("extra") or {}
    state = extra.get("train_state") or {}
    if raw:
        if state.get("raw_weights") is None:
            raise InputError(f"{src} holds no separate raw weights (it was not trained with optim.ema_decay)",
                             hint="drop --raw: this checkpoint's encoder already is its raw weights")
        encoder.load_state_dict(state["raw_weights"])
    return encoder, meta, extra


def measured_source_scale(dataset: str | Path, meta: dict) -> float:
    """The training faces' median crop px per source px (:func:`train.data.source_scale`) on
    ``dataset``'s training split as the config in ``meta`` split it."""
    from train.data import source_scale, training_split

    header, entries, idx = training_split(dataset, meta, "--source-scale-from")
    scale = source_scale(entries, idx, int(meta["size"]), int(header.get("size", meta["size"])))
    if scale is None:
        raise InputError(f"{dataset}: no training-split face to measure", hint="pass the dataset the weights were trained on")
    return scale


def average_encoders(srcs: list[str | Path], *, raw: bool = False):
    """``srcs`` (checkpoints of one architecture) → (encoder with the mean float weights, meta of the first)."""
    encoder, meta, _ = _load(srcs[0], raw)
    state = {k: v.clone().float() if v.is_floating_point() else v.clone()  # copies: never alias the encoder
             for k, v in encoder.state_dict().items()}
    for src in srcs[1:]:
        other, m, _ = _load(src, raw)
        for key in _MUST_MATCH:
            if m.get(key) != meta.get(key):
                raise InputError(f"{src}: {key} is {m.get(key)!r}, but {srcs[0]} has {meta.get(key)!r}",
                                 hint="average only fine-tunes of one encoder (same arch, layout, size and model)")
        for k, v in other.state_dict().items():
            if v.is_floating_point():
                state[k] += v.float()
    encoder.load_state_dict({k: v / len(srcs) if v.is_floating_point() else v for k, v in state.items()})
    return encoder, meta


def ship_weights(src: str | Path | list, dst: str | Path, *, half: bool = True, raw: bool = False,
                 source_scale_from: str | Path | None = None, yaw_symmetry_from: str | Path | None = None,
                 threads: int | None = None) -> Path:
    """``src`` (a ``recon train`` checkpoint, or a list of them to average) → ``dst`` (encoder-only,
    float16 by default); ``raw``: the optimiser's weights of runs trained with ``optim.ema_decay``
    instead of their moving average; ``source_scale_from``: a prepared dataset on which to measure
    ``meta["source_scale"]`` (:func:`measured_source_scale`) instead of keeping the source's;
    ``yaw_symmetry_from``: one on which to measure ``meta["yaw_symmetry"]``
    (:func:`train.symmetry.measure_yaw_symmetry`, on ``threads``) instead of keeping the source's, which
    a uniform average of several sources does not keep (it is each source's own)."""
    srcs = [src] if isinstance(src, (str, Path)) else list(src)
    if not srcs:
        raise InputError("no source checkpoint given", hint="python -m train.ship SRC.pt [SRC2.pt ...] DST.pt")
    if len(srcs) == 1:
        encoder, meta, src_extra = _load(srcs[0], raw)
        state = src_extra.get("train_state") or {}
        if not state and "storage" in src_extra:  # a shipped file: keep where it came from
            extra = {k: v for k, v in src_extra.items() if k != "storage"}
        else:
            extra = {"source": Path(srcs[0]).name, **{k: state[k] for k in ("step", "best_val", "ema") if k in state}}
    else:
        encoder, meta = average_encoders(srcs, raw=raw)
        extra = {"source": "uniform average of " + ", ".join(Path(s).name for s in srcs),
                 "sources": [str(s) for s in srcs]}
    scale = measured_source_scale(source_scale_from, meta) if source_scale_from else meta.get("source_scale")
    sym = meta.get("yaw_symmetry") if len(srcs) == 1 and not raw else None
    if yaw_symmetry_from:
        from train.symmetry import measure_yaw_symmetry

        if half:  # measure the weights as they will be stored
            encoder.load_state_dict({k: v.half().float() if v.is_floating_point() else v
                                     for k, v in encoder.state_dict().items()})

        def progress(done: int, total: int) -> None:
            if done == total or done * 10 // total != (done - 64) * 10 // total:
                print(f"yaw symmetry: encoded {done}/{total} training faces", file=sys.stderr, flush=True)

        sym = measure_yaw_symmetry(encoder, meta, yaw_symmetry_from, threads=threads, progress=progress).to_meta()
    return save_checkpoint(dst, encoder, arch=meta["arch"], layout=CoeffLayout(**meta["layout"]), size=meta["size"],
                           model_name=meta["model_name"], model_hash=meta["model_hash"], config=meta.get("config"),
                           extra={**extra, **({"weights": "raw"} if raw else {}),
                                  "storage": "float16" if half else "float32"}, half=half, source_scale=scale,
                           yaw_symmetry=sym)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, nargs="+", help="training checkpoint(s) (.pt); several are averaged uniformly")
    ap.add_argument("dst", type=Path, help="output weights (.pt)")
    ap.add_argument("--fp32", action="store_true", help="keep float32 storage")
    ap.add_argument("--raw", action="store_true",
                    help="runs trained with optim.ema_decay: ship the raw weights, not their moving average")
    ap.add_argument("--source-scale-from", type=Path, metavar="DATASET",
                    help="measure the training faces' resolution (meta source_scale) on this prepared dataset "
                         "(the one the weights were trained on), for weights trained before recon train recorded it")
    ap.add_argument("--yaw-symmetry-from", type=Path, metavar="DATASET",
                    help="measure the encoder's yaw-dependent asymmetry (meta yaw_symmetry, removed at run time) on "
                         "this prepared dataset's training split: needed after training, averaging or --raw")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for --yaw-symmetry-from")
    args = ap.parse_args(argv)
    try:
        out = ship_weights(args.src, args.dst, half=not args.fp32, raw=args.raw,
                           source_scale_from=args.source_scale_from, yaw_symmetry_from=args.yaw_symmetry_from,
                           threads=args.threads)
    except ReconError as e:  # a missing, unreadable or mismatched checkpoint: the message and its fix
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
