"""``recon prep``: images → a prepared training dataset (format: :mod:`train.dataset_format`).

For every source image: read → MediaPipe landmarks (the largest face) → 5-point alignment
into the ``size × size`` crop → 68 points, region labels (and AFLW 21-point labels with
``pts21``) in crop pixels → crop JPEG + mask PNG written atomically → one manifest line,
appended by the parent process only after both files exist. Bad files are recorded in
``skipped.jsonl`` with the reason and never stop the run. A rerun with the same ``--out``
skips ids already in the manifest (or in ``skipped.jsonl``).

Workers: ``workers`` processes, each with its own MediaPipe graph (built once per process);
``shard=(i, n)`` keeps every n-th file of the sorted source list starting at i, so n machines
with shards 0..n-1 cover the list exactly once.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from recon_cli.atomic import atomic_write_bytes, atomic_write_text
from recon_cli.errors import InputError
from train import dataset_format as fmt

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass
class PrepOptions:
    """Options of :func:`run_prep` (the CLI's flags)."""

    size: int = 224
    workers: int = 1
    shard: tuple[int, int] = (0, 1)
    min_size: float = 32.0  # smallest face (longer side of the 68-point box, original px)
    align_scale: float = 1.0
    border: str = "constant"
    jpeg_quality: int = 95
    pts21: str | None = None
    parsing: str | None = None
    preview: int = 0
    min_detection_confidence: float = 0.3
    roi_fallback: bool = False  # no detection → FaceMesh on the whole image as the face box (pre-cropped data)
    chunksize: int = 16
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------- sources
def _sanitize(rel: str) -> str:
    stem = rel.rsplit(".", 1)[0] if "." in Path(rel).name else rel
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem.replace("/", "__").replace("\\", "__")).strip("._") or "img"


def list_sources(src: str | Path) -> list[tuple[str, Path, str]]:
    """``src`` (a folder, searched recursively, or a text file of paths, one per line, relative
    to the list file's folder) → sorted ``[(id, path, source_as_given)]``. Ids are the path
    relative to the folder without extension, '/' → '__'; collisions get a hash suffix."""
    src = Path(src)
    if src.is_dir():
        paths = sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
        items = [(p.relative_to(src).as_posix(), p) for p in paths]
    elif src.is_file():
        try:
            lines = src.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise InputError(f"{src} is neither a folder nor a text list of image paths",
                             hint="pass a folder of images or a .txt file with one image path per line") from None
        rels = sorted({ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")})
        items = [(r, (src.parent / r) if not Path(r).is_absolute() else Path(r)) for r in rels]
    else:
        raise InputError(f"source not found: {src}", hint="pass a folder of images or a list file")
    ids = [_sanitize(r) for r, _ in items]
    counts = Counter(ids)
    out = []
    for (rel, p), i in zip(items, ids):
        if counts[i] > 1:
            i = f"{i}-{hashlib.sha1(rel.encode()).hexdigest()[:8]}"
        out.append((i, p, rel))
    return out


def shard(items: list, i: int, n: int) -> list:
    """Every ``n``-th item starting at ``i`` (``0 <= i < n``): shards 0..n-1 partition ``items``."""
    if n < 1 or not 0 <= i < n:
        raise InputError(f"--shard {i}/{n}: expected i/n with 0 <= i < n", hint="e.g. --shard 0/4 … --shard 3/4")
    return items[i::n]


# ---------------------------------------------------------------------------------- AFLW 21 points
class Pts21Table:
    """AFLW manual 21-point labels (``pts21.npy``: N×2×21 original-photo px, negative = invisible)
    with ``roi_box.npy`` (N×4 x0, y0, x1, y1 of each crop in its photo) and ``list.txt`` (the
    order) in the same folder. :meth:`lookup` maps a crop file's labels into its pixels.

    Optional ``yaws.npy`` (N,) beside them: AFLW's head yaw label in degrees (estimated by AFLW
    from the manual points with a mean 3-D face; its sign is the opposite of the model's yaw,
    see :mod:`train.losses.pose`); :meth:`yaw` returns it, ``recon prep`` stores ``extra.yaw_deg``."""

    def __init__(self, path: str | Path):
        path = Path(path)
        folder = path.parent
        need = [path, folder / "roi_box.npy", folder / "list.txt"]
        missing = [str(p) for p in need if not p.is_file()]
        if missing:
            raise InputError(f"--pts21 needs {', '.join(missing)}",
                             hint="point --pts21 at aflw-train/pts21.npy with roi_box.npy and list.txt beside it")
        self.pts = _load_npy(path)
        self.roi = _load_npy(folder / "roi_box.npy")
        names = (folder / "list.txt").read_text().split()
        if not (self.pts.ndim == 3 and self.pts.shape[1:] == (2, 21) and len(self.pts) == len(self.roi) == len(names)):
            raise InputError(f"{path}: expected pts21 N×2×21, roi_box N×4 and N names; got {self.pts.shape}, "
                             f"{self.roi.shape}, {len(names)}", hint="use the aflw-train files as shipped")
        self.index = {Path(n).name: k for k, n in enumerate(names)}
        self.yaws = None
        if (folder / "yaws.npy").is_file():
            yaws = _load_npy(folder / "yaws.npy").ravel()
            if yaws.shape != (len(names),):
                raise InputError(f"{folder / 'yaws.npy'}: expected {len(names)} yaw values (one per name of list.txt), "
                                 f"found shape {yaws.shape}", hint="use the aflw-train files as shipped, or remove yaws.npy")
            self.yaws = yaws

    def yaw(self, image_path: Path) -> float | None:
        """AFLW yaw label (degrees) of a crop file, or None (no ``yaws.npy``, not listed, not finite)."""
        k = self.index.get(image_path.name)
        if k is None or self.yaws is None or not np.isfinite(self.yaws[k]):
            return None
        return float(self.yaws[k])

    def lookup(self, image_path: Path, image_shape: tuple[int, int]) -> np.ndarray | None:
        """→ ``(21, 2)`` in the crop *image's* pixels (NaN invisible), or None when not listed."""
        k = self.index.get(image_path.name)
        if k is None:
            return None
        x0, y0, x1, y1 = self.roi[k]
        h, w = image_shape
        p = self.pts[k].T.copy()  # (21, 2)
        invisible = (p < 0).any(1)
        p = (p - [x0, y0]) * [w / (x1 - x0), h / (y1 - y0)]
        p[invisible] = np.nan
        return p


def _load_npy(path: Path) -> np.ndarray:
    """A numeric ``.npy`` as float64; InputError naming the file when it is unreadable or not numeric."""
    try:
        return np.load(path).astype(np.float64)
    except (ValueError, TypeError, OSError, EOFError) as e:
        raise InputError(f"{path}: not a readable numeric .npy file ({e})",
                         hint="re-copy it from the aflw-train folder as shipped") from None


# ---------------------------------------------------------------------------------- worker
_W: dict[str, Any] = {}


def _init_worker(opts: PrepOptions, out: str) -> None:
    import cv2

    cv2.setNumThreads(1)
    from recon_cli.face.align import AlignConfig
    from recon_cli.face.frontend import FaceFrontEnd, FrontEndConfig
    from recon_cli.face.mediapipe_mesh import LandmarkerConfig

    cfg = FrontEndConfig(landmarker=LandmarkerConfig(static=True, max_faces=4,
                                                     min_detection_confidence=opts.min_detection_confidence),
                         align=AlignConfig(size=opts.size, scale=opts.align_scale, border=opts.border))
    roi = None
    if opts.roi_fallback:
        from recon_cli.face.roi_mesh import RoiFaceMesh

        roi = RoiFaceMesh(refine=cfg.landmarker.refine)
    _W.update(fe=FaceFrontEnd(cfg), opts=opts, out=Path(out), roi=roi,
              pts21=Pts21Table(opts.pts21) if opts.pts21 else None,
              parser=_load_parser(opts.parsing) if opts.parsing else None)


def _load_parser(ckpt: str):
    from recon_cli.face.parsing import FaceParser

    return FaceParser(ckpt)


def _process(item: tuple[str, str, str]) -> dict[str, Any]:
    """One source → {"ok": record} or {"skip": reason}; never raises."""
    from recon_cli.face.align import transform_points
    from recon_cli.face.frontend import face_size
    from recon_cli.face.io import encode_image, read_rgb

    sid, path, rel = item
    opts: PrepOptions = _W["opts"]
    try:
        try:
            img = read_rgb(path)
        except InputError as e:
            return {"id": sid, "source": rel, "skip": f"unreadable: {e.message}"}
        faces = _W["fe"].detect(img)
        if not faces and _W.get("roi") is not None:
            # pre-cropped data (AFLW crops): the image is the face box; the detector misses
            # mostly profiles, which the landmark model still fits from the box
            faces = [_W["roi"].face(img, np.array([0.0, 0.0, img.shape[1], img.shape[0]]))]
        if not faces:
            return {"id": sid, "source": rel, "skip": "no face"}
        face = max(faces, key=face_size)  # the largest face
        fs = face_size(face)
        if fs < opts.min_size:
            return {"id": sid, "source": rel, "skip": f"too small: face {fs:.0f} px < --min-size {opts.min_size:g}"}
        pf = _W["fe"].prepare(img, face)
        labels = pf.labels
        if _W["parser"] is not None:
            from recon_cli.face.masks import exclude

            labels = exclude(labels, _W["parser"].face_area(pf.crop))
        extra: dict[str, Any] = {}
        if _W["pts21"] is not None:
            p = _W["pts21"].lookup(Path(path), img.shape[:2])
            if p is not None:
                extra["pts21"] = transform_points(p, pf.M)
            yaw = _W["pts21"].yaw(Path(path))
            if yaw is not None:
                extra["yaw_deg"] = round(yaw, 4)
        out: Path = _W["out"]
        crop_rel, mask_rel = f"crops/{sid}.jpg", f"masks/{sid}.png"
        atomic_write_bytes(out / crop_rel, encode_image(pf.crop, ".jpg", opts.jpeg_quality))
        atomic_write_bytes(out / mask_rel, encode_image(labels, ".png"))
        rec = {"id": sid, "source": rel, "crop": crop_rel, "mask": mask_rel, "lm68": pf.lm68,
               "score": face.score, "M": pf.M, "size_px": fs, "extra": extra}
        if face.score == 0.0 and _W.get("roi") is not None:
            rec["extra"]["face_source"] = "roi-fallback"
        return {"id": sid, "source": rel, "ok": rec}
    except Exception as e:  # noqa: BLE001 — one bad file must never stop the run
        return {"id": sid, "source": rel, "skip": f"error: {type(e).__name__}: {e}"}


# ---------------------------------------------------------------------------------- driver
def make_header(opts: PrepOptions) -> dict[str, Any]:
    """The ``dataset.json`` content for ``opts`` (template and camera of the crop)."""
    from recon_cli.face.align import AlignConfig, crop_camera, template
    from recon_cli import __version__
    from recon_cli.face.masks import LABEL_NAMES

    acfg = AlignConfig(size=opts.size, scale=opts.align_scale, border=opts.border)
    return {"format_version": fmt.FORMAT_VERSION, "size": opts.size,
            "mask_source": "bisenet" if opts.parsing else "mediapipe", "landmarks": "mediapipe68",
            "template": np.round(template(acfg), 4).tolist(), "camera": asdict(crop_camera(acfg)),
            "align": asdict(acfg), "labels": {str(k): v for k, v in LABEL_NAMES.items()},
            "recon_version": __version__, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def _check_header(out: Path, header: dict[str, Any]) -> None:
    old = fmt.load_header(out)
    for key in ("size", "mask_source", "landmarks", "camera", "align"):
        if old.get(key) != header[key]:
            raise InputError(f"{out} was prepared with {key}={old.get(key)!r}, this run asks for {header[key]!r}",
                             hint="use the same options to resume, or a new --out folder")
    if not np.allclose(old.get("template"), header["template"], atol=1e-3):
        raise InputError(f"{out} was prepared with another alignment template (the default model changed?)",
                         hint="prepare into a new --out folder")


def run_prep(src: str | Path, out: str | Path, opts: PrepOptions = PrepOptions(), *,
             progress: bool = True) -> dict[str, Any]:
    """Prepare ``src`` into ``out`` (see the module docstring) → the report dict (also report.json)."""
    out = Path(out)
    items = shard(list_sources(src), *opts.shard)
    if opts.pts21:
        Pts21Table(opts.pts21)  # fail early with a clear message
    if opts.parsing and not Path(opts.parsing).is_file():
        raise InputError(f"--parsing checkpoint not found: {opts.parsing}", hint="pass a BiSeNet 79999_iter.pth or omit --parsing")
    header = make_header(opts)
    out.mkdir(parents=True, exist_ok=True)
    if (out / fmt.HEADER).is_file():
        _check_header(out, header)
    else:
        atomic_write_text(out / fmt.HEADER, json.dumps(header, indent=2) + "\n")
    for name in (fmt.MANIFEST, fmt.SKIPPED):
        fmt.repair_jsonl(out / name)  # a crash mid-append leaves a torn line: that sample is redone
    done = {r["id"] for r in fmt.read_jsonl(out / fmt.MANIFEST)}
    done |= {r.get("id") for r in fmt.read_jsonl(out / fmt.SKIPPED)}
    todo = [(i, str(p), rel) for i, p, rel in items if i not in done]
    counts: Counter = Counter()
    reasons: Counter = Counter()
    t0 = time.perf_counter()
    with open(out / fmt.MANIFEST, "a", encoding="utf-8") as man, open(out / fmt.SKIPPED, "a", encoding="utf-8") as skp:
        for res in _results(todo, opts, out, progress):
            if "ok" in res:
                man.write(fmt.json_line(res["ok"]))
                man.flush()
                counts["processed"] += 1
                counts["roi_fallback"] += (res["ok"].get("extra") or {}).get("face_source") == "roi-fallback"
            else:
                skp.write(json.dumps({"source": res["source"], "id": res["id"], "reason": res["skip"]}) + "\n")
                skp.flush()
                reasons[res["skip"].split(":")[0]] += 1
                counts["skipped"] += 1
        os.fsync(man.fileno())
        os.fsync(skp.fileno())
    dt = time.perf_counter() - t0
    attempted = counts["processed"] + counts["skipped"]
    detectable = attempted - reasons["unreadable"] - reasons["error"]
    report = {
        "source": str(src), "out": str(out), "sources": len(items), "already_done": len(items) - len(todo),
        "processed": counts["processed"], "skipped": counts["skipped"], "skipped_by_reason": dict(reasons),
        "seconds": round(dt, 2), "images_per_s": round(attempted / dt, 2) if dt > 0 else None,
        # faces the detector found (--roi-fallback faces are not detections)
        "detection_rate": round(1 - (reasons["no face"] + counts["roi_fallback"]) / detectable, 4) if detectable else None,
        "roi_fallback": counts["roi_fallback"],
        "options": {k: v for k, v in asdict(opts).items() if k != "extra"}, "workers": opts.workers,
    }
    atomic_write_text(out / fmt.REPORT, json.dumps(report, indent=2) + "\n")
    if opts.preview:
        write_preview(out, opts.preview)
    return report


def _results(todo: list, opts: PrepOptions, out: Path, progress: bool) -> Iterable[dict[str, Any]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    cols = (TextColumn("prep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]} img/s"),
            TimeRemainingColumn())
    with Progress(*cols, disable=not progress or not todo, transient=False) as bar:
        task = bar.add_task("prep", total=len(todo), rate="-")
        t0 = time.perf_counter()
        if opts.workers <= 1:
            _init_worker(opts, str(out))
            it: Iterable = map(_process, todo)
        else:
            import multiprocessing as mp

            pool = mp.get_context("spawn").Pool(opts.workers, initializer=_init_worker, initargs=(opts, str(out)))
            it = pool.imap_unordered(_process, todo, chunksize=opts.chunksize)
        try:
            for n, res in enumerate(it, 1):
                yield res
                bar.update(task, advance=1, rate=f"{n / max(time.perf_counter() - t0, 1e-9):.1f}")
        finally:
            if opts.workers > 1:
                pool.terminate()
                pool.join()
            else:
                _W.pop("fe").close()


def write_preview(dataset_dir: str | Path, n: int, path: str | Path | None = None, cols: int = 8) -> Path:
    """A PNG grid of the first ``n`` samples: crop with mask overlay, 68 points (yellow) and
    AFLW 21 points (magenta) where present → ``DATASET/preview.png`` (or ``path``)."""
    from recon_cli.face.draw import draw_points, grid, overlay_labels
    from recon_cli.face.io import encode_image

    _, samples = fmt.load_manifest(dataset_dir)
    if not samples:
        raise InputError(f"{dataset_dir} has no samples to preview", hint="run `recon prep` first")
    tiles = []
    for s in samples[:n]:
        crop, lab = s.load_crop(), s.load_mask()
        left = draw_points(crop, s.lm68, (255, 255, 0))
        if s.pts21 is not None:
            left = draw_points(left, s.pts21, (255, 0, 255), radius=2)
        tiles.append(np.concatenate([left, overlay_labels(crop, lab)], 1))
    path = Path(path) if path else Path(dataset_dir) / fmt.PREVIEW
    atomic_write_bytes(path, encode_image(grid(tiles, cols=max(1, cols // 2)), ".png"))
    return path
