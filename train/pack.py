"""Move a prepared dataset as size-capped, self-contained parts, and put it back together.

    recon pack DATASET PACKDIR --part-mib 30 [--quality 85]
    recon unpack PACKDIR [PART.tar.gz ...] --out DATASET

What it is for: a prepared dataset (:mod:`train.dataset_format`) is ~16,000 small files and a
26 MB manifest; a training machine reached through a link with a per-transfer cap (a rented GPU,
a lent device, a mail-sized upload) needs it as a few files of bounded size that can travel one at
a time, in any order, and be unpacked as they arrive.

Each part ``part-NNN.tar.gz`` is a tar compressed by gzip at level 1 (the JPEG and PNG members do
not compress; the tar's 512-byte headers and zero padding, ~14 % of a plain tar of 224-px crops,
do, and level 1 costs ~0.6 s per 30 MiB) holding

* ``pack.json``: ``{"pack_format": 1, "part": i, "samples": k, "jpeg_quality": q | null,
  "dataset_header": <DATASET/dataset.json>}``: every part carries the dataset header, so
  any part can start a new dataset folder;
* ``manifest.jsonl.xz``: the manifest lines of this part's samples, unchanged but for
  ``extra.pack_index`` (the sample's position in the source manifest; xz makes the JSON ~3.4×
  smaller);
* ``crops/<id>.jpg`` and ``masks/<id>.png`` of those samples.

A part never exceeds ``part_bytes``: parts are filled by an estimate and checked once written; one
that came out larger is split in two (a single sample larger than the cap is an error). ``PACKDIR/pack.json`` lists the parts with their sizes, sample counts and
SHA-256; :func:`unpack` checks a part against it when it is beside the part.

``jpeg_quality``: re-encode the crops at this JPEG quality (``recon prep`` writes 95); 85 makes a
224-px crop ~1.7× smaller. Masks and landmarks are never re-encoded. The unpacked header records
it (``repacked.jpeg_quality``), so a training log can tell.

Unpacking is resumable and idempotent: a part's files are written and synced to disk before
its manifest lines are appended, and ids already in the manifest are skipped, so an interrupted
unpack is simply run again. Parts of another dataset (a different header) are refused. Parts
that arrive out of order are put back in the packed order (the trainer's validation split takes
the first ``data.val_max`` held-out faces in manifest order).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import os
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from recon_cli.atomic import atomic_path, atomic_write_text
from recon_cli.errors import InputError
from train.dataset_format import HEADER, MANIFEST, json_line, load_header, read_jsonl, repair_jsonl

PACK_FORMAT = 1
PACK_INDEX = "pack.json"
PART_META = "pack.json"
PART_MANIFEST = "manifest.jsonl.xz"
_MEMBER_COST = 96  # gzip'd tar header + padding per member, bytes (measured ~40 at level 1)
_SAFE_MEMBER = re.compile(r"^(crops/[A-Za-z0-9._-]+\.jpg|masks/[A-Za-z0-9._-]+\.png)$")
#: Header keys two parts must agree on to be unpacked into one dataset.
_HEADER_KEYS = ("format_version", "size", "camera", "template", "align", "landmarks", "mask_source", "labels")
#: Room kept in every part for pack.json, the manifest's xz container and the tar end blocks.
_PART_RESERVE = 16 * 1024


def _reencode_jpeg(data: bytes, quality: int, name: str) -> bytes:
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{name}: not a readable JPEG", hint="re-run `recon prep` with the same --out to redo it")
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise InputError(f"{name}: JPEG re-encoding failed")
    return buf.tobytes()


@dataclass
class _Sample:
    line: str  # manifest line (with newline)
    members: tuple[tuple[str, bytes], tuple[str, bytes]]  # (crops/<id>.jpg, bytes), (masks/<id>.png, bytes)

    @property
    def cost(self) -> int:
        """Estimated bytes in a gzip'd tar: JPEG / PNG data do not compress; a member's 512-byte
        header and zero padding compress to well under _MEMBER_COST; the manifest line is xz'd to
        about a third (counted as a half)."""
        return sum(len(d) + _MEMBER_COST for _, d in self.members) + len(self.line) // 2


def _write_part(path: Path, samples: list[_Sample], meta: dict[str, Any]) -> None:
    manifest = lzma.compress("".join(s.line for s in samples).encode("utf-8"), preset=6)
    members = [(PART_META, (json.dumps(meta, indent=1) + "\n").encode("utf-8")), (PART_MANIFEST, manifest)]
    members += [m for s in samples for m in s.members]
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:  # PAX: ids of any length
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))


def pack(dataset: str | Path, out: str | Path, part_bytes: int, jpeg_quality: int | None = None,
         on_sample: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write ``dataset`` as ``out/part-NNN.tar.gz`` files of at most ``part_bytes`` each, plus
    ``out/pack.json`` (the index, written last). Returns the index.

    ``on_sample(done, total)``: progress callback. Samples whose crop or mask file is missing are
    an error (naming the sample), not silently dropped.
    """
    src, out = Path(dataset), Path(out)
    header = load_header(src)
    if part_bytes < 4 * _PART_RESERVE:  # 64 KiB
        raise InputError(f"part size {part_bytes} bytes is too small", hint="use --part-mib 0.25 or more")
    if jpeg_quality is not None and not 1 <= jpeg_quality <= 100:
        raise InputError(f"--quality {jpeg_quality}: expected 1..100 (or leave it out to copy the crops as they are)")
    records, seen = [], set()
    for rec in read_jsonl(src / MANIFEST):
        if rec["id"] not in seen:
            seen.add(rec["id"])
            records.append(rec)
    if not records:
        raise InputError(f"{src}: the manifest lists no samples", hint="run `recon prep IMAGES --out DATASET` first")
    if out.exists() and any(out.glob("part-*.tar.gz")):
        done = "a finished pack" if (out / PACK_INDEX).is_file() else "parts of an interrupted pack (no pack.json)"
        raise InputError(f"{out} already holds {done}", hint="pack into a new folder, or delete the old parts and run again")
    out.mkdir(parents=True, exist_ok=True)
    pack_header = dict(header)
    if jpeg_quality is not None:
        pack_header["repacked"] = {"jpeg_quality": int(jpeg_quality)}
    parts: list[dict[str, Any]] = []

    def emit(samples: list[_Sample]) -> None:
        """Write one part; in the rare case the estimate was short, split it in two instead."""
        i = len(parts)
        path = out / f"part-{i:03d}.tar.gz"
        meta = {"pack_format": PACK_FORMAT, "part": i, "samples": len(samples), "jpeg_quality": jpeg_quality,
                "dataset_header": pack_header}
        _write_part(path, samples, meta)
        size = path.stat().st_size
        if size > part_bytes:
            path.unlink()
            if len(samples) == 1:
                raise InputError(f"sample {json.loads(samples[0].line)['id']} alone needs {size} bytes, more than a "
                                 f"part ({part_bytes})", hint="raise --part-mib")
            half = len(samples) // 2
            emit(samples[:half])
            emit(samples[half:])
            return
        parts.append({"file": path.name, "bytes": size, "samples": len(samples),
                      "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
        ratio[0] = min(1.0, size / max(1, sum(x.cost for x in samples)))

    # The estimate is high (gzip still takes ~8 % off the PNG masks and JPEG headers): once a part
    # is written, later parts are filled against its measured size / estimate ratio (0.98 of it, to
    # keep the split-in-two fallback rare).
    ratio = [1.0]
    current: list[_Sample] = []
    used = 0
    for n, rec in enumerate(records):
        crop_p, mask_p = src / rec["crop"], src / rec["mask"]
        if not (crop_p.is_file() and mask_p.is_file()):
            raise InputError(f"{src}: sample {rec['id']} lists {rec['crop']} / {rec['mask']} but a file is missing",
                             hint="re-run `recon prep` with the same --out to redo it")
        crop = crop_p.read_bytes()
        if jpeg_quality is not None:
            crop = _reencode_jpeg(crop, jpeg_quality, str(crop_p))
        crop_name, mask_name = f"crops/{rec['id']}.jpg", f"masks/{rec['id']}.png"
        if not (_SAFE_MEMBER.match(crop_name) and _SAFE_MEMBER.match(mask_name)):  # `recon prep` ids always are
            raise InputError(f"{src}: sample id {rec['id']!r} has characters a part cannot carry safely",
                             hint="ids are letters, digits, '.', '_' and '-' (as `recon prep` makes them)")
        extra = {**rec.get("extra", {}), "pack_index": n}
        s = _Sample(json_line({**rec, "crop": crop_name, "mask": mask_name, "extra": extra}),
                    ((crop_name, crop), (mask_name, mask_p.read_bytes())))
        if current and (used + s.cost) * ratio[0] > 0.98 * (part_bytes - _PART_RESERVE):
            emit(current)
            current, used = [], 0
        current.append(s)
        used += s.cost
        if on_sample:
            on_sample(n + 1, len(records))
    emit(current)
    index = {"pack_format": PACK_FORMAT, "source": str(src), "samples": len(records), "part_bytes": part_bytes,
             "jpeg_quality": jpeg_quality, "bytes": sum(p["bytes"] for p in parts), "parts": parts}
    atomic_write_text(out / PACK_INDEX, json.dumps(index, indent=1) + "\n")
    return index


def _part_files(sources: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for s in sources:
        p = Path(s)
        if p.is_dir():
            found = sorted(p.glob("part-*.tar.gz"))
            if not found:
                raise InputError(f"{p}: no part-*.tar.gz files in this folder", hint="pass the folder `recon pack` wrote")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or folder", hint="pass part-NNN.tar.gz files or the folder holding them")
    return files


def _index_digests(folder: Path) -> dict[str, str]:
    """``{part file name: SHA-256}`` from ``folder/pack.json``, or ``{}`` when there is none."""
    idx = folder / PACK_INDEX
    if not idx.is_file():
        return {}
    try:
        entries = json.loads(idx.read_text(encoding="utf-8")).get("parts", [])
        return {e["file"]: e["sha256"] for e in entries if e.get("file") and e.get("sha256")}
    except (json.JSONDecodeError, AttributeError, TypeError):
        raise InputError(f"{idx} is not a pack index", hint="delete it to unpack without the checksum check") from None


def _check_header(dst: Path, header: dict[str, Any], part: Path) -> None:
    hp = dst / HEADER
    if not hp.is_file():
        atomic_write_text(hp, json.dumps(header, indent=2) + "\n")
        return
    have = load_header(dst)
    diff = [k for k in _HEADER_KEYS if have.get(k) != header.get(k)]
    if diff:
        raise InputError(f"{part}: its dataset header differs from {hp} in {', '.join(diff)}",
                         hint="unpack the parts of one `recon pack` into one folder; use a new --out for another dataset")


def unpack(sources: Iterable[str | Path], out: str | Path,
           on_part: Callable[[Path, int, int], None] | None = None) -> dict[str, Any]:
    """Unpack part files (or folders of them) into the dataset folder ``out`` (created or resumed).

    Returns ``{"parts": n, "added": samples appended, "already_present": samples skipped,
    "samples": manifest size after}``. ``on_part(path, added, skipped)`` after each part.
    """
    dst = Path(out)
    files = _part_files(sources)
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "crops").mkdir(exist_ok=True)
    (dst / "masks").mkdir(exist_ok=True)
    repair_jsonl(dst / MANIFEST)
    have = {rec["id"] for rec in read_jsonl(dst / MANIFEST)}
    added = skipped = 0
    digests: dict[Path, dict[str, str]] = {}  # pack.json of each folder, read once
    for f in files:
        data = f.read_bytes()
        if f.parent not in digests:
            digests[f.parent] = _index_digests(f.parent)
        want = digests[f.parent].get(f.name)
        if want is not None and hashlib.sha256(data).hexdigest() != want:
            raise InputError(f"{f}: SHA-256 differs from {f.parent / PACK_INDEX} (a truncated or damaged transfer)",
                             hint="copy the part again")
        try:  # gzip.decompress checks the stream's CRC-32 and length: damage cannot pass silently
            tar = tarfile.open(fileobj=io.BytesIO(gzip.decompress(data)), mode="r:")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise InputError(f"{f}: not a readable part ({e})", hint="copy the part again, or re-create it with `recon pack`") from None
        with tar:
            members = {m.name: m for m in tar.getmembers()}
            if PART_META not in members or PART_MANIFEST not in members:
                raise InputError(f"{f}: not a `recon pack` part (no {PART_META} / {PART_MANIFEST})")
            meta = json.loads(tar.extractfile(members[PART_META]).read())
            if meta.get("pack_format") != PACK_FORMAT:
                raise InputError(f"{f}: pack format {meta.get('pack_format')}, this recon reads {PACK_FORMAT}",
                                 hint="pack and unpack with the same recon version")
            _check_header(dst, meta["dataset_header"], f)
            try:
                text = lzma.decompress(tar.extractfile(members[PART_MANIFEST]).read()).decode("utf-8")
            except lzma.LZMAError as e:
                raise InputError(f"{f}: its manifest is damaged ({e})", hint="copy the part again") from None
            lines = [ln for ln in text.splitlines() if ln.strip()]
            recs = [json.loads(ln) for ln in lines]
            new = [(ln, r) for ln, r in zip(lines, recs) if r["id"] not in have]
            for _, r in new:  # files first: a manifest line never points at a missing file
                for key in ("crop", "mask"):
                    name = r[key]
                    if not _SAFE_MEMBER.match(name) or name not in members:
                        raise InputError(f"{f}: sample {r['id']} names {name!r}, which the part does not hold safely",
                                         hint="re-create the part with `recon pack`")
                    (dst / name).write_bytes(tar.extractfile(members[name]).read())
            if new:
                os.sync()  # the part's files are on disk before the manifest names them
                with open(dst / MANIFEST, "a", encoding="utf-8") as m:
                    m.write("".join(ln + "\n" for ln, _ in new))
            have.update(r["id"] for _, r in new)
            added += len(new)
            skipped += len(recs) - len(new)
            if on_part:
                on_part(f, len(new), len(recs) - len(new))
    reordered = _restore_order(dst / MANIFEST) if added else False
    return {"parts": len(files), "added": added, "already_present": skipped, "samples": len(have),
            "reordered": reordered}


def _restore_order(manifest: Path) -> bool:
    """Rewrite the manifest in the packed order (``extra.pack_index``) when parts arrived out of
    order; returns whether it did. The order matters: the trainer's ``data.val_max`` takes the
    first held-out faces in manifest order, so a different order validates on different faces.
    Lines without a pack index (samples added by ``recon prep``) keep their place after the packed ones."""
    lines = [ln for ln in manifest.read_text(encoding="utf-8").splitlines() if ln.strip()]
    keys = [json.loads(ln).get("extra", {}).get("pack_index") for ln in lines]
    packed = [k for k in keys if k is not None]
    if all(a < b for a, b in zip(packed, packed[1:])):
        return False
    order = sorted(range(len(lines)), key=lambda i: (keys[i] is None, keys[i] if keys[i] is not None else i))
    atomic_write_text(manifest, "".join(lines[i] + "\n" for i in order))
    return True
