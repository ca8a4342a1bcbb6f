"""`recon eval aflw2000`: AFLW2000-3D 68-point NME by yaw bin, with the published protocol."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from recon_cli.cli.common import SOURCE_RES_HELP, YAW_SYMMETRY_HELP, Backend, SourceRes, YawSymmetry

eval_app = typer.Typer(help="Evaluate a model on a benchmark (table + --json/--csv files).", no_args_is_help=True)


class Method(str, Enum):
    recon = "recon"
    mediapipe = "mediapipe"


class Crop(str, Enum):
    detector = "detector"
    gt = "gt"
    both = "both"


class GtAlign(str, Enum):
    mesh = "mesh"
    box = "box"


class Contour(str, Enum):
    bfm = "bfm"
    model = "model"


class Jaw(str, Enum):
    bfm = "bfm"
    bfm_hidden = "bfm-hidden"
    model = "model"


class Tta(str, Enum):
    none = "none"
    flip = "flip"


class Landmarks(str, Enum):
    original = "original"
    reannotated = "reannotated"


@eval_app.command("aflw2000")
def aflw2000(
    data: Path = typer.Option(..., "--data", help="AFLW2000-3D folder in the official layout: imageXXXXX.jpg + .mat "
                              "(pt3d_68, Pose_Para), optionally AFLW2000-3D.list, AFLW2000-3D-new.pose.npy, "
                              "AFLW2000-3D-Reannotated.pts68.npy beside them."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="encoder for --method recon: .pt checkpoint "
                                           "(recon train), .onnx or .engine (recon export). Default: the shipped weights."),
    backend: Backend = typer.Option(Backend.auto, "--backend", help="encoder runtime (auto: by file extension)."),
    method: Method = typer.Option(Method.recon, "--method", help="recon: the encoder's projected model landmarks; "
                                  "mediapipe: MediaPipe's 68 mapped points directly (no encoder, the landmark teacher)."),
    crop: Crop = typer.Option(Crop.detector, "--crop", help="detector: the real pipeline (MediaPipe finds the face; a "
                              "miss is counted and that image is cropped from its ground-truth box); gt: the 3DDFA "
                              "protocol (crop from the ground-truth landmark box only); both: run and print both."),
    landmarks: Landmarks = typer.Option(Landmarks.original, "--landmarks", help="ground truth: original (pt3d_68) or "
                                        "reannotated (AFLW2000-3D-Reannotated.pts68.npy)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write every number and the settings as JSON."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="write per-image rows (name, yaw, bin, nme, detector "
                                           "hit); with --crop both, one file per mode (FILE.detector.csv, FILE.gt.csv)."),
    report: Optional[Path] = typer.Option(None, "--report", help="folder for worst_<crop>.png: the worst images, "
                                          "predicted landmarks red, ground truth green."),
    points: Optional[Path] = typer.Option(None, "--save-points", help="write predicted and ground-truth 68 points "
                                          "of every image (.npz) for re-scoring; with --crop both, FILE.<crop>.npz."),
    by_region: bool = typer.Option(False, "--by-region", help="also print NME per landmark region (jaw, brows, "
                                   "nose, eyes, mouth) by yaw bin; the JSON always has it."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="only the first N images (by name)."),
    min_iou: float = typer.Option(0.25, "--min-iou", min=0.0, max=1.0, help="--crop detector: a detected face whose "
                                  "landmark box overlaps the annotated face's ground-truth box less than this is a miss."),
    threads: Optional[int] = typer.Option(None, "--threads", help="encoder CPU threads."),
    gt_align: GtAlign = typer.Option(GtAlign.mesh, "--gt-align", help="--method recon on a ground-truth box (--crop gt, "
                                     "and detector misses): mesh = FaceMesh landmark model on the box gives the 5 "
                                     "alignment points (as in training); box = place the box like a frontal face's, no landmarks."),
    contour: Jaw = typer.Option(Jaw.bfm, "--contour", help="jaw points 0–16, in the convention of AFLW2000-3D's "
                                "ground truth (recon_cli/eval/contour.py): bfm = where a jaw point faces away from the "
                                "camera, score it at the BFM contour's depth, and slide the others along the jaw to "
                                "the BFM's spacing (needs --bfm-template and --teacher-mesh; --method mediapipe: the "
                                "spacing only); bfm-hidden = the hidden points only (the rule before this version); "
                                "model = the morphable model's own landmark vertices (MediaPipe's own points)."),
    inner: Contour = typer.Option(Contour.bfm, "--inner", help="inner points 17–67 (both methods): bfm = move each "
                                  "by the BFM template's offset from the landmark teacher's point on the mean face "
                                  "(the convention of AFLW2000-3D's ground truth; recon_cli/eval/contour.py; needs "
                                  "--bfm-template and --teacher-mesh); model = the points as the encoder (trained on "
                                  "MediaPipe's 300W-style points) or MediaPipe gives them."),
    bfm_template: Optional[Path] = typer.Option(None, "--bfm-template", help="--contour/--inner bfm: the BFM 68-point "
                                                "template (Deep3DFaceRecon's BFM/similarity_Lm3D_all.mat). "
                                                "Default: DATA/../bfm-topology/similarity_Lm3D_all.mat."),
    teacher_mesh: Optional[Path] = typer.Option(None, "--teacher-mesh", help="--inner bfm, --contour bfm: MediaPipe's FaceLandmarker "
                                                "bundle (its canonical face mesh). Default: "
                                                "DATA/../mediapipe/face_landmarker.task."),
    calib: str = typer.Option("auto", "--calib", help="AFLW's annotation convention for the brows, eyes, mouth and "
                              "chin (a .aflw21.json of `recon eval calibrate`, fitted on AFLW-train's held-out faces, "
                              "no benchmark data): auto = --method recon: WEIGHTS.aflw21.json beside the weights "
                              "(default.pt → default.pt.aflw21.json) when there is one (the shipped default has "
                              "one), --method mediapipe: recon_cli/weights/mediapipe.aflw21.json (shipped); none = "
                              "off; or a file fitted for that method."),
    tta: Tta = typer.Option(Tta.none, "--tta", help="--method recon, test-time augmentation: none = one crop (the "
                            "published protocol); flip = also encode the mirror image and average the two sets of 68 "
                            "points (twice the encoder work)."),
    source_res: SourceRes = typer.Option(SourceRes.train, "--source-res", help="--method recon: " + SOURCE_RES_HELP),
    yaw_symmetry: YawSymmetry = typer.Option(YawSymmetry.on, "--yaw-symmetry", help="--method recon: " + YAW_SYMMETRY_HELP),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar."),
) -> None:
    """AFLW2000-3D landmark NME (%) by |yaw| bin, the protocol of 3DDFA / PRNet / 3DDFA-V2.

    68 points, x and y only; per image: mean point-to-point error / sqrt(w·h) of the ground-truth landmark box.

    Bins |yaw| ≤ 30°, (30°, 60°], > 60°; yaw from the AFLW labels (AFLW2000-3D-new.pose.npy) when present, else Pose_Para.

    Prints each bin's mean, their balanced mean (the "mean" papers print), the plain mean, detector misses and images/s, beside the published rows of the paper's Table 1.
    """
    from rich.console import Console

    from recon_cli.eval.aflw2000 import evaluate
    from recon_cli.eval.aflw2000_data import Aflw2000
    from recon_cli.eval.output import print_regions, print_table, write_csv, write_json, write_points
    from recon_cli.eval.report import write_worst_grid

    console = Console()
    dataset = Aflw2000(data, landmarks=landmarks.value)
    crops = ["detector", "gt"] if crop == Crop.both else [crop.value]
    template = teacher = None
    jaw_on = contour != Jaw.model and (method == Method.recon or contour == Jaw.bfm)
    if jaw_on or inner == Contour.bfm:
        from recon_cli.eval.contour import default_teacher_path, default_template_path

        template = bfm_template or default_template_path(data)
        if inner == Contour.bfm or contour == Jaw.bfm:
            teacher = teacher_mesh or default_teacher_path(data)
    predictor, extra = _make_predictor(method, weights, backend, threads, gt_align, template, tta, teacher,
                                       jaw=contour, inner=inner, calib=calib, source_res=source_res,
                                       yaw_symmetry=yaw_symmetry)
    results = []
    try:
        for c in crops:
            results.append(evaluate(dataset, predictor, crop=c, limit=limit, min_iou=min_iou, progress=not quiet,
                                    extra_settings=extra))
    finally:
        close = getattr(predictor, "close", None)
        if close:
            close()
    print_table(results, console)
    if by_region:
        print_regions(results, console)
    if json_out:
        write_json(json_out, results)
        console.print(f"wrote {json_out}")
    if csv_out:
        for p in write_csv(csv_out, results):
            console.print(f"wrote {p}")
    if points:
        for p in write_points(points, results):
            console.print(f"wrote {p}")
    if report:
        for r in results:
            console.print(f"wrote {write_worst_grid(r, report)}")


@eval_app.command("compare")
def compare_cmd(
    base: Path = typer.Argument(..., help="JSON of `recon eval aflw2000 --json` for the reference model."),
    other: Optional[Path] = typer.Argument(None, help="JSON of the model to compare with it (same benchmark, same images). Leave out for BASE's own 95 % intervals."),
    boot: int = typer.Option(4000, "--boot", help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", help="Seed of the resampling (the result is reproducible)."),
    run: int = typer.Option(0, "--run", min=0, help="Which run of each file (--crop both writes 0 = detector, 1 = gt)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the comparison to this file ('-': stdout only)."),
) -> None:
    """Is OTHER really better than BASE? A paired bootstrap over the benchmark's images, stratified by yaw bin: each statistic's difference (other - base, NME %; negative = better) with its 95 % interval. With BASE alone: its own numbers with their 95 % intervals.

    The interval covers which images the benchmark holds, not training noise: compare several seeds of a recipe for that.

    Example: recon eval compare base.json new.json
    """
    from rich.console import Console
    from rich.table import Table

    from recon_cli.benchtable import write_json
    from recon_cli.eval.compare import STATS, compare

    c = compare(base, other, boot=boot, seed=seed, run=run)
    if json_out is not None and str(json_out) == "-":
        typer.echo(json.dumps(c.to_dict(), indent=2))
        return
    console = Console()
    counts = " / ".join(map(str, c.bin_count))
    if other is None:
        t = Table(title=f"AFLW2000-3D NME %: {base.name}, {c.n} images ({counts} per bin), {c.boot} resamples")
        for col in ("", "NME %", "95 % interval"):
            t.add_column(col, justify="right")
        for i, name in enumerate(STATS):
            t.add_row(name, f"{c.base_stats[i]:.3f}", f"[{c.ci95[i][0]:.3f}, {c.ci95[i][1]:.3f}]")
        console.print(t)
    else:
        t = Table(title=f"AFLW2000-3D NME %: {other.name} − {base.name}, {c.n} paired images ({counts} per bin), "
                        f"{c.boot} resamples")
        for col in ("", "base", "other", "diff", "95 % interval", "P(other not worse)"):
            t.add_column(col, justify="right")
        for i, name in enumerate(STATS):
            lo, hi = c.ci95[i]
            t.add_row(name, f"{c.base_stats[i]:.3f}", f"{c.other_stats[i]:.3f}", f"{c.diff[i]:+.3f}",
                      f"[{lo:+.3f}, {hi:+.3f}]", f"{c.p_not_worse[i]:.3f}")
        console.print(t)
        if c.only_in_one:
            console.print(f"[yellow]{c.only_in_one} images are in one file only or in another bin, and were left out[/]")
        if c.scoring_differs:
            console.print(f"[yellow]the two runs were scored differently ({'; '.join(c.scoring_differs)}): the "
                          "difference measures the scoring as well as the models[/]")
        lo, hi = c.ci95[3]
        verdict = "better" if hi < 0 else "worse" if lo > 0 else "not distinguishable from the base"
        console.print(f"balanced mean: {other.name} is {verdict} at 95 % (on these images)")
    write_json(json_out, c.to_dict())


class Split(str, Enum):
    val = "val"
    train = "train"
    all = "all"


@eval_app.command("calibrate")
def calibrate_cmd(
    data: Path = typer.Argument(..., help="prepared dataset (`recon prep --pts21`) whose faces carry AFLW's manual 21-point labels."),
    method: Method = typer.Option(Method.recon, "--method", help="recon: the encoder's points; mediapipe: MediaPipe's "
                                  "own points (the baseline of `recon eval aflw2000 --method mediapipe`, needs --out)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="the encoder to calibrate (.pt/.onnx/.engine). Default: the shipped weights."),
    out: Optional[Path] = typer.Option(None, "--out", help="calibration file to write. Default (--method recon): "
                                       "WEIGHTS.aflw21.json beside the weights, where `recon eval aflw2000 --calib "
                                       "auto` finds it."),
    split: Split = typer.Option(Split.val, "--split", help="which faces: val = the held-out split `recon train` makes "
                                "with these --val-fraction/--split-seed (faces the encoder did not train on); train; all."),
    val_fraction: float = typer.Option(0.05, "--val-fraction", min=0.0, max=0.99, help="data.val_fraction of the encoder's training run."),
    split_seed: int = typer.Option(0, "--split-seed", help="data.split_seed of the encoder's training run."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="only the first N faces of the split."),
    contour: Jaw = typer.Option(Jaw.bfm, "--contour", help="the jaw rule the offsets are fitted on top of (as in `recon eval aflw2000`)."),
    yaw_symmetry: YawSymmetry = typer.Option(YawSymmetry.on, "--yaw-symmetry", help="--method recon: the yaw-symmetry "
                                             "rule the offsets are fitted on top of (as in `recon eval aflw2000`). " + YAW_SYMMETRY_HELP),
    inner: Contour = typer.Option(Contour.bfm, "--inner", help="the inner-point rule the offsets are fitted on top of (as in `recon eval aflw2000`)."),
    bfm_template: Optional[Path] = typer.Option(None, "--bfm-template", help="--contour/--inner bfm: the BFM 68-point template "
                                                "(Deep3DFaceRecon's BFM/similarity_Lm3D_all.mat)."),
    teacher_mesh: Optional[Path] = typer.Option(None, "--teacher-mesh", help="--inner bfm, --contour bfm: MediaPipe's face_landmarker.task."),
    backend: Backend = typer.Option(Backend.auto, "--backend", help="encoder runtime (auto: by file extension)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="encoder CPU threads."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the per-point table as JSON ('-': stdout only)."),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar."),
) -> None:
    """Fit AFLW's annotation convention for the brows, eye corners and centres, mouth corners and centre, and chin: one model-space offset per point (recon_cli/eval/aflw21_calib.py), from the encoder's own predictions against the manual labels of faces it did not train on. No AFLW2000-3D data is used. `recon eval aflw2000` adds the offsets on top of the --contour/--inner rules they were fitted with.

    Example: recon eval calibrate data/aflw --val-fraction 0.04 --bfm-template BFM/similarity_Lm3D_all.mat --teacher-mesh face_landmarker.task
    """
    from rich.console import Console
    from rich.table import Table

    from recon_cli.backends import load_backend
    from recon_cli.benchtable import write_json
    from recon_cli.errors import InputError
    from recon_cli.eval import aflw21_calib as ac
    from recon_cli.eval.aflw2000 import _progress
    from recon_cli.eval.contour import (HiddenContour, TeacherInner, inner_settings, load_bfm_template,
                                        load_teacher_canonical)
    from recon_cli.eval.predictors import default_weights, no_weights_error
    from recon_cli.morphable import load_default_model
    from recon_cli.pipeline.reconstruct import Reconstructor
    from train.data import split_ids
    from train.dataset_format import load_manifest

    mp = method == Method.mediapipe
    w = None
    if mp:
        if out is None:
            raise InputError("--method mediapipe has no weights to write the calibration beside",
                             hint="pass --out FILE.aflw21.json, then `recon eval aflw2000 --method mediapipe --calib FILE`")
        if inner != Contour.bfm:
            raise InputError("a MediaPipe calibration is fitted on top of the BFM inner-point convention",
                             hint="use --inner bfm (the default) with --bfm-template and --teacher-mesh")
        if contour == Jaw.bfm_hidden:  # MediaPipe's jaw has no hidden-contour rule: it is scored as it is
            contour = Jaw.model
        if yaw_symmetry != YawSymmetry.on:
            raise _recon_only("--yaw-symmetry", "MediaPipe has no coefficients")
    else:
        w = weights or default_weights()
        if w is None:
            raise no_weights_error()
        if not Path(w).is_file():
            raise InputError(f"encoder weights not found: {w}", hint="pass --weights FILE (.pt, .onnx or .engine)")
    need = {"--bfm-template": bfm_template} if contour != Jaw.model or inner == Contour.bfm else {}
    if inner == Contour.bfm or contour == Jaw.bfm:
        need["--teacher-mesh"] = teacher_mesh
    missing = [k for k, v in need.items() if v is None]
    if missing:
        raise InputError(f"--contour/--inner bfm need {' and '.join(missing)}",
                         hint="pass the files, or --contour model --inner model to fit on the model's own points")
    header, samples = load_manifest(data)
    tr, va = split_ids([s.id for s in samples], val_fraction, split_seed)
    chosen = {"val": va, "train": tr, "all": list(range(len(samples)))}[split.value]
    faces = [samples[i] for i in chosen if samples[i].pts21 is not None]
    if limit:
        faces = faces[:limit]
    if not chosen:
        raise InputError(f"{data}: the {split.value} split is empty (--val-fraction {val_fraction})",
                         hint="give the --val-fraction of the encoder's training run, or choose --split all")
    if not faces:
        raise InputError(f"{data}: none of the {len(chosen)} faces of the {split.value} split carries pts21 labels",
                         hint="prepare the dataset with `recon prep IMAGES --pts21 pts21.npy`")
    dest = out or ac.beside(w)
    if (dest.exists() and not dest.is_file()) or (dest.parent.exists() and not dest.parent.is_dir()):
        raise InputError(f"cannot write {dest}: not a file path", hint="pass --out FILE.aflw21.json in a writable folder")
    template = load_bfm_template(bfm_template) if need else None
    teacher = load_teacher_canonical(teacher_mesh) if "--teacher-mesh" in need else None
    console = Console()
    bar = _progress(not quiet, len(faces), f"calibrate · {method.value} · {len(faces)} faces")
    if mp:
        with bar as advance:
            delta, stats = ac.fit_mediapipe(faces, TeacherInner.from_template(template, teacher, spacing=contour == Jaw.bfm),
                                            progress=lambda n: advance())
        rules = {"contour": "bfm-spacing" if contour == Jaw.bfm else "model", "inner": "bfm"}
        ident = {"weights": "mediapipe", "weights_sha256": ac.mediapipe_digest()}
    else:
        model = load_default_model()
        cont = None
        if need:
            cont = HiddenContour.from_template(model, template, teacher, jaw=contour != Jaw.model,
                                               spacing=contour == Jaw.bfm, inner=inner == Contour.bfm)
        rec = Reconstructor(load_backend(w, backend=backend.value, threads=threads), model, contour=cont,
                            yaw_symmetry=yaw_symmetry.value)
        align = header.get("align", {})
        if abs(float(align.get("scale", rec.align_cfg.scale)) - rec.align_cfg.scale) > 1e-6:
            raise InputError(f"{data} was prepared with align scale {align.get('scale')}, the encoder expects "
                             f"{rec.align_cfg.scale}", hint="calibrate on a dataset prepared with the default alignment")
        with bar as advance:
            delta, stats = ac.fit(rec, faces, int(header.get("size", rec.size)),
                                  progress=lambda n: [advance() for _ in range(n)])
        rules = {"contour": contour.value,
                 "inner": inner_settings(bfm_template, teacher_mesh if inner == Contour.bfm else None)["rule"],
                 "symmetry": rec.symmetry_rule}
        ident = {"weights": Path(w).name, "weights_sha256": ac.weights_digest(w)}
    info = {"method": method.value, **ident, "rules": rules, "dataset": str(data),
            "split": {"name": split.value, "val_fraction": val_fraction, "split_seed": split_seed, "limit": limit},
            "faces": len(faces), **stats,
            "licence": "derived from the dataset's manual landmarks: the dataset's terms apply (AFLW: research use)"}
    ac.Calibration(offsets=ac.expand68(delta), info=info).save(dest)
    if json_out is not None and str(json_out) == "-":
        typer.echo(json.dumps(info, indent=2))
        return
    frame = "MediaPipe canonical" if mp else "model"
    t = Table(title=f"AFLW-convention offsets, {method.value}, {len(faces)} faces ({split.value} split); "
                    "NME % of the face box, this point only")
    for col in ("AFLW point", "", "faces", f"offset x/y/z mm ({frame})", "before", "after"):
        t.add_column(col, justify="right")
    for k, st in stats["points"].items():
        t.add_row(k, ac.NAMES[int(k) - 1], str(st["faces"]), " ".join(f"{v:+.1f}" for v in st["offset_mm"]),
                  f"{st['nme_before_pct']:.2f}", f"{st['nme_after_pct']:.2f}")
    console.print(t)
    console.print(f"wrote {dest}")
    write_json(json_out, info)


def _recon_only(option: str, why: str):
    """The error for an option of ``--method recon`` given to ``--method mediapipe``."""
    from recon_cli.errors import InputError

    return InputError(f"{option} applies to --method recon only ({why})", hint=f"drop {option}, or use --method recon")


def _make_predictor(method: Method, weights: Optional[Path], backend: Backend, threads: Optional[int],
                    gt_align: GtAlign = GtAlign.mesh, bfm_template: Optional[Path] = None, tta: Tta = Tta.none,
                    teacher_mesh: Optional[Path] = None, jaw: Jaw = Jaw.bfm, inner: Contour = Contour.bfm,
                    calib: str = "none", source_res: SourceRes = SourceRes.train,
                    yaw_symmetry: YawSymmetry = YawSymmetry.on):
    """The predictor; ``bfm_template`` (a path) switches on the BFM convention: the jaw rule ``jaw``
    and, with ``teacher_mesh``, the inner points (``inner``); ``calib``: auto | none | a
    ``.aflw21.json`` (:mod:`recon_cli.eval.aflw21_calib`)."""
    from recon_cli.eval import predictors

    if method == Method.mediapipe:
        if tta != Tta.none:
            raise _recon_only("--tta", "MediaPipe's points are scored as it gives them")
        if source_res != SourceRes.train:
            raise _recon_only("--source-res", "MediaPipe crops with its own detector")
        if yaw_symmetry != YawSymmetry.on:
            raise _recon_only("--yaw-symmetry", "MediaPipe has no coefficients")
        cal = None if calib in ("auto", "none") else Path(calib)
        if calib == "auto":  # the baseline's own, shipped beside the default encoder's
            from recon_cli.eval.aflw21_calib import MEDIAPIPE_NAME
            from recon_cli.paths import WEIGHTS_DIR

            cal = WEIGHTS_DIR / MEDIAPIPE_NAME if (WEIGHTS_DIR / MEDIAPIPE_NAME).is_file() else None
        return predictors.MediaPipePredictor(bfm_template=bfm_template, teacher_mesh=teacher_mesh, calib=cal,
                                             calib_auto=calib == "auto", inner_bfm=inner == Contour.bfm,
                                             jaw="bfm-spacing" if jaw == Jaw.bfm else "model"), {}
    w = weights or predictors.default_weights()
    if w is None:
        raise predictors.no_weights_error()
    cal: Optional[Path] = None
    if calib == "auto":
        from recon_cli.eval.aflw21_calib import beside

        cal = beside(w) if beside(w).is_file() else None
    elif calib != "none":
        cal = Path(calib)
    return predictors.ReconPredictor(w, backend=backend.value, threads=threads, gt_align=gt_align.value,
                                     bfm_template=bfm_template, tta=tta.value, teacher_mesh=teacher_mesh,
                                     jaw=jaw.value, inner_bfm=inner == Contour.bfm, calib=cal,
                                     calib_auto=calib == "auto", source_res=source_res.value,
                                     yaw_symmetry=yaw_symmetry.value), {}


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
