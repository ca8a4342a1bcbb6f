"""`recon eval compare`: the paired, yaw-stratified bootstrap of two AFLW2000-3D results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recon_cli.cli.app import main
from recon_cli.errors import InputError
from recon_cli.eval.compare import STATS, compare

BINS = [0] * 60 + [1] * 25 + [2] * 15


def write_eval(path, nmes, bins=BINS, names=None, settings=None):
    names = names or [f"image{i:05d}.jpg" for i in range(len(nmes))]
    rows = [{"name": n, "bin": b, "nme_pct": float(v), "yaw_deg": 10.0 + 30 * b} for n, b, v in zip(names, bins, nmes)]
    path.write_text(json.dumps({"runs": [{"settings": settings or {"method": "recon"}, "per_image": rows}]}))
    return path


def test_a_constant_shift_is_found_exactly_and_ties_are_ties(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.gamma(4.0, 1.0, len(BINS)) + np.array(BINS) * 2
    a = write_eval(tmp_path / "a.json", base)
    c = compare(a, write_eval(tmp_path / "b.json", base - 0.5), boot=500)
    for i, name in enumerate(STATS):
        assert c.diff[i] == pytest.approx(-0.5) and c.ci95[i] == pytest.approx((-0.5, -0.5)), name
        assert c.p_not_worse[i] == 1.0
    same = compare(a, a, boot=500)
    assert same.diff == [0.0] * 5 and same.ci95 == [(0.0, 0.0)] * 5
    means = [base[np.array(BINS) == k].mean() for k in range(3)]
    assert c.base_stats[:3] == pytest.approx(means) and c.base_stats[3] == pytest.approx(np.mean(means))
    assert c.base_stats[4] == pytest.approx(base.mean())


def test_noise_without_a_shift_is_not_a_difference_and_the_interval_narrows_with_pairing(tmp_path):
    rng = np.random.default_rng(2)
    base = rng.gamma(4.0, 1.0, len(BINS))
    other = base + rng.normal(0, 0.3, len(BINS))  # per-image noise around the same model
    c = compare(write_eval(tmp_path / "a.json", base), write_eval(tmp_path / "b.json", other), boot=2000, seed=3)
    lo, hi = c.ci95[3]
    assert lo < c.diff[3] < hi and lo < 0 < hi  # no shift: zero is inside the interval
    alone = compare(tmp_path / "a.json", None, boot=2000, seed=3)  # the base's own interval is far wider
    assert alone.ci95[3][1] - alone.ci95[3][0] > 3 * (hi - lo)
    assert alone.ci95[3][0] < alone.base_stats[3] < alone.ci95[3][1]
    again = compare(tmp_path / "a.json", tmp_path / "b.json", boot=2000, seed=3)
    assert again.ci95 == c.ci95  # reproducible by seed


def test_bad_inputs_are_input_errors(tmp_path):
    a = write_eval(tmp_path / "a.json", np.ones(len(BINS)))
    with pytest.raises(InputError, match="no such file"):
        compare(a, tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="not a JSON file"):
        compare(a, tmp_path / "bad.json")
    (tmp_path / "empty.json").write_text(json.dumps({"summary": {}}))
    with pytest.raises(InputError, match="no evaluation runs"):
        compare(a, tmp_path / "empty.json")
    other = write_eval(tmp_path / "o.json", np.ones(len(BINS)), names=[f"x{i}.jpg" for i in range(len(BINS))])
    with pytest.raises(InputError, match="share only 0 images"):
        compare(a, other)
    with pytest.raises(InputError, match="--run 1"):
        compare(a, a, run=1)
    with pytest.raises(InputError, match="too few resamples"):
        compare(a, a, boot=10)


def test_cli_table_json_and_errors(tmp_path, capsys):
    rng = np.random.default_rng(4)
    base = rng.gamma(4.0, 1.0, len(BINS))
    a, b = write_eval(tmp_path / "a.json", base), write_eval(tmp_path / "b.json", base + 1.0)
    with pytest.raises(SystemExit) as e:
        main(["eval", "compare", str(a), str(b), "--boot", "300", "--json", str(tmp_path / "c.json")])
    out = capsys.readouterr().out
    assert (e.value.code or 0) == 0 and "worse at 95 %" in " ".join(out.split())
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["stats"]["balanced"]["diff"] == pytest.approx(1.0) and doc["images"] == len(BINS)
    with pytest.raises(SystemExit) as e:
        main(["eval", "compare", str(a), "--json", "-", "--boot", "300"])
    doc = json.loads(capsys.readouterr().out)
    assert (e.value.code or 0) == 0 and set(doc["stats"]) == set(STATS)
    with pytest.raises(SystemExit) as e:
        main(["eval", "compare", str(a), str(tmp_path / "nope.json")])
    err = " ".join(capsys.readouterr().err.split())
    assert e.value.code != 0 and "nope.json" in err and "Traceback" not in err


def test_runs_scored_differently_are_flagged(tmp_path, capsys):
    """Two runs of one model under other scoring rules (here: the AFLW calibration, the inner-point
    rule) differ by the scoring: compare says so, in the table's footer and the JSON."""
    base = np.random.default_rng(5).gamma(4.0, 1.0, len(BINS))
    common = {"method": "recon", "crop": "detector", "landmarks": "original", "contour": {"rule": "bfm-hidden"}}
    a = write_eval(tmp_path / "a.json", base, settings={**common, "inner": {"rule": "bfm"}, "aflw21_calib": None})
    b = write_eval(tmp_path / "b.json", base - 0.2, settings={**common, "inner": {"rule": "model"},
                                                               "aflw21_calib": {"file": "x.aflw21.json"}})
    assert compare(a, b, boot=200).scoring_differs == ["inner rule: bfm vs model", "AFLW calibration: off vs on"]
    assert compare(a, a, boot=200).scoring_differs == []
    with pytest.raises(SystemExit) as e:
        main(["eval", "compare", str(a), str(b), "--boot", "200", "--json", str(tmp_path / "c.json")])
    out = " ".join(capsys.readouterr().out.split())
    assert (e.value.code or 0) == 0 and "scored differently (inner rule: bfm vs model; AFLW calibration: off vs on)" in out
    assert json.loads((tmp_path / "c.json").read_text())["scoring_differs"] == ["inner rule: bfm vs model",
                                                                               "AFLW calibration: off vs on"]
