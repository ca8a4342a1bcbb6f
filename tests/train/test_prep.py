"""`recon prep`: dataset format, bad inputs, resume, shards, AFLW 21 points, workers, CLI."""

from __future__ import annotations

import json
import shutil

from pathlib import Path

import numpy as np
import pytest

from recon_cli.errors import InputError
from train import dataset_format as fmt
from train.prep import PrepOptions, list_sources, run_prep, shard


@pytest.fixture
def src(tmp_path, shared_data):
    """3 real photos (one in a sub-folder), a corrupt JPEG, a truncated JPEG and a blank image."""
    import cv2

    d = tmp_path / "src"
    (d / "sub").mkdir(parents=True)
    ex = shared_data / "faces" / "deep3d-examples"
    shutil.copy(ex / "000002.jpg", d / "a.jpg")
    shutil.copy(ex / "015259.jpg", d / "sub" / "b.jpg")
    shutil.copy(ex / "vd025.png", d / "c.png")
    (d / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg" * 10)
    (d / "truncated.jpg").write_bytes((ex / "000006.jpg").read_bytes()[:3000])
    cv2.imwrite(str(d / "blank.png"), np.full((300, 300, 3), 128, np.uint8))
    (d / "notes.txt").write_text("not an image")
    return d


def test_prep_writes_the_dataset_format_and_reports_skips(src, tmp_path):
    out = tmp_path / "ds"
    rep = run_prep(src, out, PrepOptions(preview=4), progress=False)
    assert rep["processed"] == 3 and rep["skipped"] == 3
    assert rep["skipped_by_reason"] == {"unreadable": 2, "no face": 1}
    assert rep["detection_rate"] == pytest.approx(0.75)
    header, samples = fmt.load_manifest(out, check_files=True)
    assert header["size"] == 224 and header["mask_source"] == "mediapipe" and header["landmarks"] == "mediapipe68"
    assert np.array(header["template"]).shape == (5, 2) and header["camera"]["focal"] == pytest.approx(1015.0)
    assert sorted(s.id for s in samples) == ["a", "c", "sub__b"]
    skipped = {r["source"]: r["reason"] for r in fmt.read_jsonl(out / fmt.SKIPPED)}
    assert skipped["blank.png"] == "no face"
    assert skipped["corrupt.jpg"].startswith("unreadable") and "truncated" in skipped["truncated.jpg"]
    for s in samples:
        crop, mask = s.load_crop(), s.load_mask()
        assert crop.shape == (224, 224, 3) and mask.shape == (224, 224) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 1, 2, 3, 4}
        assert s.lm68.shape == (68, 2) and 0 < s.score <= 1 and s.M.shape == (2, 3)
        assert ((s.lm68 > 0) & (s.lm68 < 224)).all()
    assert (out / fmt.PREVIEW).is_file() and json.loads((out / fmt.REPORT).read_text())["processed"] == 3


def test_resume_skips_done_work_and_tolerates_a_torn_line(src, tmp_path):
    out = tmp_path / "ds"
    run_prep(src, out, PrepOptions(), progress=False)
    lines = (out / fmt.MANIFEST).read_text().splitlines(keepends=True)
    # simulate a crash: the last sample's line half-written
    (out / fmt.MANIFEST).write_text("".join(lines[:-1]) + lines[-1][:40])
    rep = run_prep(src, out, PrepOptions(), progress=False)
    assert rep["processed"] == 1 and rep["already_done"] == 5 and rep["skipped"] == 0
    _, samples = fmt.load_manifest(out)
    assert len(samples) == 3
    rep = run_prep(src, out, PrepOptions(), progress=False)
    assert rep["processed"] == 0 and rep["already_done"] == 6
    with pytest.raises(InputError, match="size"):
        run_prep(src, out, PrepOptions(size=128), progress=False)


def test_shards_partition_the_sorted_list(src):
    items = list_sources(src)
    assert [i[0] for i in items] == sorted(i[0] for i in items)
    parts = [shard(items, i, 3) for i in range(3)]
    ids = [x[0] for p in parts for x in p]
    assert sorted(ids) == sorted(x[0] for x in items) and len(ids) == len(set(ids))
    with pytest.raises(InputError):
        shard(items, 3, 3)


def test_list_file_sources_and_missing_source(src, tmp_path):
    lst = src / "list.txt"
    lst.write_text("a.jpg\nsub/b.jpg\n\n# comment\n")
    assert [i[0] for i in list_sources(lst)] == ["a", "sub__b"]
    with pytest.raises(InputError):
        list_sources(tmp_path / "nope")


def test_aflw_pts21_mapped_into_the_crop(shared_data, tmp_path):
    aflw = shared_data / "aflw-train"
    names = (aflw / "list.txt").read_text().split()[:6]
    lst = tmp_path / "aflw.txt"
    lst.write_text("".join(f"{aflw / 'images' / n}\n" for n in names))
    out = tmp_path / "ds"
    rep = run_prep(lst, out, PrepOptions(pts21=str(aflw / "pts21.npy"), workers=2), progress=False)
    assert rep["processed"] + rep["skipped"] == 6 and rep["processed"] >= 4
    _, samples = fmt.load_manifest(out)
    checked = 0
    for s in samples:
        p = s.pts21
        assert p.shape == (21, 2)
        lm5 = np.stack([s.lm68[36:42].mean(0), s.lm68[42:48].mean(0)])
        io = np.linalg.norm(lm5[0] - lm5[1])
        # AFLW 7/10 = eye centres (image-left, image-right); compare where labelled visible
        for k, j in ((7, 0), (10, 1)):
            if np.isfinite(p[k]).all():
                assert np.linalg.norm(p[k] - lm5[j]) < 0.35 * io, (s.id, k)
                checked += 1
    assert checked >= 4
    # the AFLW yaw label (yaws.npy beside pts21.npy) travels with each face, in degrees as stored
    yaws = dict(zip(names, np.load(aflw / "yaws.npy")))
    for s in samples:
        assert abs(s.extra["yaw_deg"] - yaws[Path(s.source).name]) < 1e-3, s.id


def test_cli_prep(src, tmp_path):
    from typer.testing import CliRunner

    from recon_cli.cli.app import app

    out, js = tmp_path / "ds", tmp_path / "r.json"
    res = CliRunner().invoke(app, ["prep", str(src), "--out", str(out), "--json", str(js), "-q", "--shard", "0/2"])
    assert res.exit_code == 0, res.output
    rep = json.loads(js.read_text())
    assert rep["sources"] == 3 and "processed" in res.output
    res = CliRunner().invoke(app, ["prep", str(src), "--out", str(out), "--shard", "x"])
    assert res.exit_code != 0


def test_roi_fallback_recovers_profiles_the_detector_misses(shared_data, tmp_path):
    """AFLW crops BlazeFace misses (profiles): skipped without --roi-fallback; with it, the FaceMesh
    landmark model on the whole crop gives a face, marked as such, whose manual eye/mouth labels
    land near its aligned landmarks; the trainer can drop its 68 points (data.fallback_lm68)."""
    from train.data import FaceDataset, load_entries

    aflw = shared_data / "aflw-train"
    names = (aflw / "list.txt").read_text().split()
    yaws = np.abs(np.load(aflw / "yaws.npy"))
    lst = tmp_path / "profiles.txt"
    profiles = np.flatnonzero((yaws > 75) & (yaws < 90))[:6]
    lst.write_text("".join(f"{aflw / 'images' / names[k]}\n" for k in profiles))
    plain = run_prep(lst, tmp_path / "plain", PrepOptions(), progress=False)
    assert plain["skipped_by_reason"].get("no face", 0) >= 2
    opts = PrepOptions(pts21=str(aflw / "pts21.npy"), roi_fallback=True)
    rep = run_prep(lst, tmp_path / "fb", opts, progress=False)
    assert rep["processed"] == 6 and rep["roi_fallback"] == plain["skipped_by_reason"]["no face"]
    assert rep["detection_rate"] == plain["detection_rate"]
    _, entries = load_entries(tmp_path / "fb")
    fb = [i for i, e in enumerate(entries) if e["extra"].get("face_source") == "roi-fallback"]
    assert len(fb) == rep["roi_fallback"]
    for i in fb:  # visible mouth corners (AFLW 18/20) near the mesh's mouth corners in the crop
        e = entries[i]
        p, lm = np.array(e["extra"]["pts21"], float), np.array(e["lm68"], float)
        for k, j in ((17, 48), (19, 54)):
            if np.isfinite(p[k]).all():
                assert np.linalg.norm(p[k] - lm[j]) < 40, (e["id"], k)  # px of the 224 crop
    # yaw label in the model's convention (radians, opposite sign to AFLW's degrees)
    for i, e in enumerate(entries):
        y = float(FaceDataset(tmp_path / "fb", entries, 64)[i]["yaw"])
        assert abs(y + np.radians(e["extra"]["yaw_deg"])) < 1e-5 and abs(np.degrees(y)) > 75
    ds = FaceDataset(tmp_path / "fb", entries, 64, fallback_lm68=False)
    assert ds[fb[0]]["lm68_weight"].sum() == 0 and FaceDataset(tmp_path / "fb", entries, 64)[fb[0]]["lm68_weight"].sum() == 68


def test_pts21_table_reads_yaws_and_rejects_a_wrong_length(tmp_path):
    from train.prep import Pts21Table

    np.save(tmp_path / "pts21.npy", np.zeros((3, 2, 21)))
    np.save(tmp_path / "roi_box.npy", np.tile([0.0, 0.0, 120.0, 120.0], (3, 1)))
    (tmp_path / "list.txt").write_text("a.jpg\nb.jpg\nc.jpg\n")
    assert Pts21Table(tmp_path / "pts21.npy").yaw(Path("a.jpg")) is None  # no yaws.npy: no label
    np.save(tmp_path / "yaws.npy", np.array([10.0, np.nan, -70.0]))
    t = Pts21Table(tmp_path / "pts21.npy")
    assert t.yaw(Path("x/c.jpg")) == -70.0 and t.yaw(Path("b.jpg")) is None and t.yaw(Path("zz.jpg")) is None
    np.save(tmp_path / "yaws.npy", np.zeros(4))
    with pytest.raises(InputError, match="yaws.npy"):
        Pts21Table(tmp_path / "pts21.npy")
    (tmp_path / "yaws.npy").write_text("not an array")  # corrupt: a clear error naming the file, no traceback
    with pytest.raises(InputError, match="yaws.npy: not a readable"):
        Pts21Table(tmp_path / "pts21.npy")
