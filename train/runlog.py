"""Run logs: every loss term per step as JSON lines (``log.jsonl``) and a CSV of the same.

Records (one JSON object per line)::

    {"kind": "train", "step": 12, "epoch": 0, "loss/total": …, "loss/photo": …, …, "lr": …,
     "img_per_s": …, "time": seconds since the run started}
    {"kind": "val", "step": 500, "lm_px": …, "lm_px_median": …, "lm_px_max": …, "nme": …, "n": …,
     "depth_abs_max_m": …}
    {"kind": "event", "step": …, "event": "skipped_batch" | "resume" | "interrupt" | …, …}

On ``--resume`` the logs are cut back to the checkpoint's step (records written after the
checkpoint belong to steps that will be run again), so the file always describes one history.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from recon_cli.atomic import atomic_write_text


class RunLog:
    """Append-only JSONL + CSV writer (only created on rank 0)."""

    def __init__(self, run_dir: Path, resume_step: int | None = None):
        self.jsonl = Path(run_dir) / "log.jsonl"
        self.csv = Path(run_dir) / "train.csv"
        self.jsonl.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            for p in (self.jsonl, self.csv):
                if p.exists():
                    p.unlink()
        else:
            self._truncate(resume_step)
        self._csv_cols: list[str] | None = None
        if self.csv.exists():
            with open(self.csv, newline="") as f:
                self._csv_cols = next(csv.reader(f), None)
        self._f = open(self.jsonl, "a", encoding="utf-8")

    def _truncate(self, step: int) -> None:
        """Keep only records with ``step <= step`` (rewritten atomically)."""
        if self.jsonl.exists():
            keep = []
            for line in self.jsonl.read_text().splitlines():
                try:
                    if json.loads(line).get("step", 0) <= step:
                        keep.append(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a crash
            atomic_write_text(self.jsonl, "".join(x + "\n" for x in keep))
        if self.csv.exists():
            rows = list(csv.reader(io.StringIO(self.csv.read_text())))
            if rows:
                head, body = rows[0], [r for r in rows[1:] if r and _int(r[0]) is not None and _int(r[0]) <= step]
                buf = io.StringIO()
                csv.writer(buf).writerows([head, *body])
                atomic_write_text(self.csv, buf.getvalue())

    def write(self, record: dict[str, Any]) -> None:
        rec = {k: _clean(v) for k, v in record.items()}
        self._f.write(json.dumps(rec) + "\n")
        self._f.flush()
        if rec.get("kind") == "train":
            self._write_csv(rec)

    def _write_csv(self, rec: dict[str, Any]) -> None:
        if self._csv_cols is None:
            self._csv_cols = ["step"] + [k for k in rec if k not in ("step", "kind")]
            with open(self.csv, "w", newline="") as f:
                csv.writer(f).writerow(self._csv_cols)
        with open(self.csv, "a", newline="") as f:
            csv.writer(f).writerow([rec.get(c, "") for c in self._csv_cols])

    def close(self) -> None:
        self._f.close()


def read_log(run_dir: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """All records of ``run_dir/log.jsonl`` (optionally of one kind)."""
    path = Path(run_dir) / "log.jsonl"
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if kind is None or r.get("kind") == kind:
            out.append(r)
    return out


def _clean(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _int(s: str) -> int | None:
    try:
        return int(s)
    except ValueError:
        return None
