"""`recon pack` / `recon unpack` (train/pack.py) on a dataset made by the real `recon prep`:
size-capped parts, a lossless round trip, out-of-order and repeated unpacking, damaged parts."""

from __future__ import annotations

import json
import tarfile

import cv2
import numpy as np
import pytest

from recon_cli.errors import InputError
from tests.train.test_train_cli import run_cli
from tests.train.tiny_dataset import tiny_dataset
from train.dataset_format import load_manifest
from train.pack import pack, unpack


@pytest.fixture(scope="module")
def tiny(shared_data, tmp_path_factory):
    return tiny_dataset(shared_data, tmp_path_factory.mktemp("pack"))


def _records(dataset):
    return [json.loads(ln) for ln in (dataset / "manifest.jsonl").read_text().splitlines() if ln.strip()]


def _small_cap(tiny) -> int:
    """A part size that holds about two samples of ``tiny`` (so a pack has several parts)."""
    one = max((tiny / r["crop"]).stat().st_size + (tiny / r["mask"]).stat().st_size for r in _records(tiny))
    return 2 * one + 24_000


def test_round_trip_is_lossless_and_parts_respect_the_cap(tiny, tmp_path):
    cap = _small_cap(tiny)
    index = pack(tiny, tmp_path / "p", part_bytes=cap)
    files = sorted((tmp_path / "p").glob("part-*.tar.gz"))
    assert len(files) == len(index["parts"]) >= 3
    assert all(f.stat().st_size <= cap for f in files)
    assert sum(p["samples"] for p in index["parts"]) == index["samples"] == len(_records(tiny))

    summary = unpack([tmp_path / "p"], tmp_path / "d")
    assert summary["added"] == index["samples"] and not summary["reordered"]
    header, samples = load_manifest(tmp_path / "d", check_files=True)
    assert header == json.loads((tiny / "dataset.json").read_text())  # no --quality: header unchanged
    src = {r["id"]: r for r in _records(tiny)}
    for s, rec in zip(samples, _records(tmp_path / "d")):
        orig = src[s.id]
        assert rec["extra"].pop("pack_index") == list(src).index(s.id)
        assert {k: v for k, v in rec.items() if k not in ("crop", "mask")} == \
            {k: v for k, v in orig.items() if k not in ("crop", "mask")}
        assert s.crop.read_bytes() == (tiny / orig["crop"]).read_bytes()
        assert s.mask.read_bytes() == (tiny / orig["mask"]).read_bytes()


def test_out_of_order_and_repeated_unpack_keep_the_packed_order(tiny, tmp_path):
    pack(tiny, tmp_path / "p", part_bytes=_small_cap(tiny))
    files = sorted((tmp_path / "p").glob("part-*.tar.gz"))
    first = unpack([files[-1]], tmp_path / "d")  # the last part alone, then all (the last again)
    rest = unpack(files[::-1], tmp_path / "d")
    assert rest["already_present"] == first["added"] and rest["reordered"]
    assert [r["id"] for r in _records(tmp_path / "d")] == [r["id"] for r in _records(tiny)]
    again = unpack([tmp_path / "p"], tmp_path / "d")
    assert again["added"] == 0 and again["samples"] == len(_records(tiny))


def test_quality_reencodes_crops_only_and_is_recorded(tiny, tmp_path):
    index = pack(tiny, tmp_path / "p", part_bytes=2**24, jpeg_quality=60)
    assert len(index["parts"]) == 1
    unpack([tmp_path / "p"], tmp_path / "d")
    header, samples = load_manifest(tmp_path / "d", check_files=True)
    assert header["repacked"] == {"jpeg_quality": 60}
    s = samples[0]
    orig = tiny / f"crops/{s.id}.jpg"
    assert s.crop.stat().st_size < orig.stat().st_size
    a, b = cv2.imread(str(s.crop)).astype(float), cv2.imread(str(orig)).astype(float)
    assert a.shape == b.shape and np.abs(a - b).mean() < 4.0  # the same picture, recompressed
    assert s.mask.read_bytes() == (tiny / f"masks/{s.id}.png").read_bytes()


def test_damaged_or_foreign_parts_are_refused_with_the_file_named(tiny, tmp_path):
    pack(tiny, tmp_path / "p", part_bytes=_small_cap(tiny))
    part = sorted((tmp_path / "p").glob("part-*.tar.gz"))[0]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(InputError, match=part.name + ".*SHA-256"):
        unpack([part], tmp_path / "d")
    (tmp_path / "p" / "pack.json").unlink()  # without the index the damage surfaces when reading
    with pytest.raises(InputError, match=part.name):
        unpack([part], tmp_path / "d")

    # a part of another dataset (another crop size) into the same folder
    other = tmp_path / "other"
    pack(tiny, tmp_path / "q", part_bytes=2**24)
    unpack([tmp_path / "q"], other)
    hdr = json.loads((other / "dataset.json").read_text())
    hdr["size"] = 112
    (other / "dataset.json").write_text(json.dumps(hdr))
    with pytest.raises(InputError, match="differs .* in size"):
        unpack([tmp_path / "q"], other)

    # an unsafe member name in the manifest is refused, not written outside the dataset
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(sorted((tmp_path / "q").glob("*.tar.gz"))[0]) as src, tarfile.open(evil, "w:gz") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()
            if m.name == "manifest.jsonl.xz":
                import lzma
                lines = lzma.decompress(data).decode().splitlines()
                rec = json.loads(lines[0])
                rec["crop"] = "../escape.jpg"
                data = lzma.compress((json.dumps(rec) + "\n").encode())
                m.size = len(data)
            import io
            dst.addfile(m, io.BytesIO(data))
    with pytest.raises(InputError, match="does not hold safely"):
        unpack([evil], tmp_path / "e")
    assert not (tmp_path / "escape.jpg").exists()


def test_cli_pack_unpack_and_bad_input(tiny, tmp_path, capsys):
    code, out, _ = run_cli(["pack", str(tiny), str(tmp_path / "p"), "--part-mib", "0.5", "--quality", "85", "-q",
                            "--json", str(tmp_path / "index.json")], capsys)
    assert code == 0, out
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["jpeg_quality"] == 85 and "samples in" in out
    code, out, _ = run_cli(["unpack", str(tmp_path / "p"), "--out", str(tmp_path / "d"),
                            "--json", str(tmp_path / "u.json")], capsys)
    assert code == 0 and json.loads((tmp_path / "u.json").read_text())["samples"] == index["samples"]

    def flat(text: str) -> str:  # rich wraps long messages
        return " ".join(text.split())

    code, _, err = run_cli(["pack", str(tmp_path / "nowhere"), str(tmp_path / "p2")], capsys)
    err = flat(err)
    assert code != 0 and "nowhere" in err and "recon prep" in err and "Traceback" not in err
    code, _, err = run_cli(["pack", str(tiny), str(tmp_path / "p")], capsys)  # parts already there
    err = flat(err)
    assert code != 0 and "already holds a finished pack" in err
    code, _, err = run_cli(["unpack", str(tmp_path / "missing.tar.gz"), "--out", str(tmp_path / "d")], capsys)
    err = flat(err)
    assert code != 0 and "missing.tar.gz" in err and "Traceback" not in err


def test_an_unpacked_dataset_trains_and_validates_exactly_like_the_original(tiny, tmp_path):
    """Parts unpacked out of order: the trainer sees the same samples in the same order, so the
    same seed trains the same step and validates (on the held-out faces in manifest order) to the
    same numbers."""
    from tests.train.test_trainer import make_cfg
    from train.runlog import read_log
    from train.trainer import train

    pack(tiny, tmp_path / "p", part_bytes=_small_cap(tiny))
    unpack(sorted((tmp_path / "p").glob("part-*.tar.gz"))[::-1], tmp_path / "d")
    vals = []
    for name, data in (("orig", tiny), ("unpacked", tmp_path / "d")):
        s = train(make_cfg(data, tmp_path / "runs", name, "data.val_fraction=0.25",
                           "optim.batch_size=4", "optim.max_steps=1", "losses.enabled=[photo,wing,reg]"))
        assert s["step"] == 1 and s["skipped_batches"] == 0
        vals.append(read_log(tmp_path / "runs" / name, "val")[-1])
    assert vals[0]["step"] == vals[1]["step"] == 1
    assert vals[0]["lm_px"] == vals[1]["lm_px"] and vals[0]["n"] == vals[1]["n"] >= 1
    steps = [read_log(tmp_path / "runs" / n, "train")[0] for n in ("orig", "unpacked")]
    assert steps[0]["loss/total"] == steps[1]["loss/total"]  # the same first batch: the same order


def test_long_ids_travel_and_unsafe_ids_are_refused_at_pack_time(tiny, tmp_path):
    import shutil

    d = tmp_path / "ds"
    shutil.copytree(tiny, d)
    recs = _records(d)
    long_id = "photos__" + "x" * 150  # longer than a plain tar header's 100-character name field
    r = recs[0]
    (d / r["crop"]).rename(d / f"crops/{long_id}.jpg")
    (d / r["mask"]).rename(d / f"masks/{long_id}.png")
    recs[0] = {**r, "id": long_id, "crop": f"crops/{long_id}.jpg", "mask": f"masks/{long_id}.png"}
    (d / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in recs))
    pack(d, tmp_path / "p", part_bytes=2**24)
    unpack([tmp_path / "p"], tmp_path / "u")
    _, samples = load_manifest(tmp_path / "u", check_files=True)
    assert samples[0].id == long_id and samples[0].crop.read_bytes() == (d / f"crops/{long_id}.jpg").read_bytes()

    recs[1] = {**recs[1], "id": "a/../b"}
    (d / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in recs))
    with pytest.raises(InputError, match="cannot carry safely"):
        pack(d, tmp_path / "q", part_bytes=2**24)
