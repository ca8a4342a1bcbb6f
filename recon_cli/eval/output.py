"""Printing and writing AFLW2000-3D results: the Table-1 style rich table, JSON and per-image CSV.

All files are written atomically (:mod:`recon_cli.atomic`).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from recon_cli.atomic import atomic_write_text
from recon_cli.eval.aflw2000 import EvalResult
from recon_cli.eval.nme import BIN_LABELS

PUBLISHED_FILE = Path(__file__).with_name("published_aflw2000.json")
CSV_COLUMNS = ("name", "yaw_deg", "bin", "bin_label", "nme_pct", "detector_hit", "crop_used")


def load_published(path: str | Path = PUBLISHED_FILE) -> list[dict[str, Any]]:
    """The published comparison rows: ``[{"method", "bins": [3 floats %], "mean", "citation", ...}]``."""
    return json.loads(Path(path).read_text(encoding="utf-8"))["rows"]


def result_row_label(result: EvalResult) -> str:
    s = result.settings
    contour = (s.get("contour") or {}).get("rule")
    inner = (s.get("inner") or {}).get("rule")
    tta = s.get("tta", "none")
    extra = "" if tta == "none" else f", TTA {tta}"
    extra += ", native res" if s.get("source_res") == "native" else ""
    extra += ", no yaw symmetry" if (s.get("yaw_symmetry") or {}).get("rule") == "none" else ""
    conv = {"bfm": ", BFM jaw", "bfm-hidden": ", BFM contour", "bfm-spacing": ", BFM jaw spacing"}.get(contour, "")
    conv += ", BFM inner" if inner == "bfm" else ""
    conv += ", AFLW calib" if s.get("aflw21_calib") else ""
    return f"{s['method']} (crop {s['crop']}, {s['landmarks']} GT{conv}{extra})"


def _bin_table(console, title: str, label_columns: tuple[str, ...]):
    """``(console, rich Table)`` with the label columns, one column per yaw bin and "mean"; a
    console that is not a terminal (pipes, CI) is widened so that each row stays on one line."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not console.is_terminal and console.width < 180:
        console = Console(width=180)
    t = Table(title=title)
    # the numbers never shrink to "…": on a narrow terminal the first (label) column wraps instead
    for i, name in enumerate(label_columns):
        t.add_column(name, no_wrap=i > 0, min_width=28 if i == 0 else None)
    for lab in BIN_LABELS:
        t.add_column(lab, justify="right", no_wrap=True, min_width=5)
    t.add_column("mean", justify="right", no_wrap=True, min_width=5)
    return console, t


def print_table(results: list[EvalResult], console=None, published: bool = True) -> None:
    """A table like the paper's Table 1: published rows (marked) then our measured rows."""
    console, t = _bin_table(console, "AFLW2000-3D · 68-point 2-D NME (%) by |yaw| · normalised by sqrt(w·h) of the GT box",
                            ("method", "source"))
    t.add_column("plain mean", justify="right", no_wrap=True, min_width=5)
    t.add_column("images (bins)", justify="right", no_wrap=True)
    t.add_column("det. misses", justify="right", no_wrap=True, min_width=6)
    t.add_column("img/s", justify="right", no_wrap=True, min_width=5)
    if published:
        for r in load_published():
            t.add_row(r["method"], "[dim]published[/]", *[f"{v:.2f}" for v in r["bins"]], f"{r['mean']:.2f}",
                      "", "2000 (1306/462/232)", "", "", style="dim")
        t.add_section()
    for res in results:
        s = res.summary
        counts = "/".join(str(c) for c in s.bin_count)
        misses = str(res.detector_misses) if res.settings["crop"] == "detector" else "n/a"
        t.add_row(f"[bold]{result_row_label(res)}[/]", "measured", *[_f(v) for v in s.bin_mean], f"[bold]{_f(s.balanced_mean)}[/]",
                  _f(s.plain_mean), f"{s.n} ({counts})", misses, f"{res.images_per_s:.1f}")
    console.print(t)
    for res in results:
        pose = res.pose_summary()
        if pose is not None:
            console.print(f"  {result_row_label(res)}: predicted |yaw| − labelled |yaw| by bin (deg): mean "
                          + " / ".join(map(_f, pose["abs_yaw_bias"])) + ", mean abs "
                          + " / ".join(map(_f, pose["abs_yaw_mae"])), highlight=False)
    for res in results:
        st = res.settings
        keys = [k for k in ("data", "method", "crop", "landmarks", "yaw_source", "min_iou", "weights", "backend",
                            "gt_align", "limit") if st.get(k) is not None]
        console.print("  ".join(f"[dim]{k}[/]={st[k]}" for k in keys), highlight=False)
    if published:
        console.print("[dim]published = figures printed by their authors on all 2,000 images (see "
                      "recon_cli/eval/published_aflw2000.json for citations); measured rows cover the images "
                      "in --data only.[/]", highlight=False)


def print_regions(results: list[EvalResult], console=None) -> None:
    """Per-region NME (%) by yaw bin: where on the face each run's error is."""
    console, t = _bin_table(console, "NME (%) by landmark region (iBUG ranges; same sqrt(w·h) normaliser)", ("run", "region"))
    for res in results:
        for k, vals in res.region_summary().items():
            t.add_row(result_row_label(res), k, *map(_f, vals))
        t.add_section()
    console.print(t)


def write_points(path: str | Path, results: list[EvalResult]) -> list[Path]:
    """``.npz`` per run: names (N,), yaw_deg (N,), nme (N,) fractions, pred68 / gt68 (N, 2, 68) px,
    crop_used (N,), yaw_pred_deg (N,) (NaN for methods without a pose); for re-scoring or per-landmark analysis without re-running the model."""
    import numpy as np

    from recon_cli.atomic import atomic_path

    path = Path(path)
    out = []
    for res in results:
        p = path if len(results) == 1 else path.with_name(f"{path.stem}.{res.settings['crop']}.npz")
        with atomic_path(p) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, names=np.array([r.name for r in res.images]),
                                    yaw_deg=np.array([r.yaw_deg for r in res.images]),
                                    nme=np.array([r.nme for r in res.images]),
                                    pred68=np.stack([r.pred68 for r in res.images]),
                                    gt68=np.stack([r.gt68 for r in res.images]),
                                    crop_used=np.array([r.crop_used for r in res.images]),
                                    yaw_pred_deg=np.array([np.nan if r.yaw_pred_deg is None else r.yaw_pred_deg
                                                           for r in res.images]))
        out.append(p)
    return out


def _f(v: float | None) -> str:
    """Two decimals; "–" for None or NaN (an empty bin)."""
    return "–" if v is None or v != v else f"{v:.2f}"


def to_json(results: list[EvalResult]) -> dict[str, Any]:
    return {"runs": [r.to_dict() for r in results], "published": load_published()}


def write_json(path: str | Path, results: list[EvalResult]) -> None:
    atomic_write_text(path, json.dumps(to_json(results), indent=2) + "\n")


def csv_text(result: EvalResult) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in result.images:
        hit = "" if r.detector_hit is None else int(r.detector_hit)
        w.writerow([r.name, f"{r.yaw_deg:.4f}", r.bin, BIN_LABELS[r.bin], f"{100 * r.nme:.5f}", hit, r.crop_used])
    return buf.getvalue()


def write_csv(path: str | Path, results: list[EvalResult]) -> list[Path]:
    """One CSV per run; with several runs (both crop modes) the crop mode is added to the file name."""
    path = Path(path)
    out = []
    for res in results:
        p = path if len(results) == 1 else path.with_name(f"{path.stem}.{res.settings['crop']}{path.suffix or '.csv'}")
        atomic_write_text(p, csv_text(res))
        out.append(p)
    return out
