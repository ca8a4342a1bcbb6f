"""`--method recon` through the real pipeline: a real (untrained) encoder exported to ONNX and run by
ONNX Runtime, the shipped morphable model, MediaPipe detection, the 5-point aligner."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recon_cli.eval.crops import canonical_box_in_crop, gt_box_transform, square_landmark_box, virtual_five_points


@pytest.fixture(scope="module")
def onnx_encoder(tmp_path_factory, shared_data):  # the export checks parity on the data's crops
    pytest.importorskip("torch")
    from export.onnx_export import export_onnx, load_encoder

    encoder, meta = load_encoder(arch="mobilenet_v3_small", untrained=True)
    out = tmp_path_factory.mktemp("enc") / "untrained.onnx"
    return export_onnx(encoder, meta, out)


def test_gt_crop_of_mean_face_lands_on_the_gt_box(onnx_encoder):
    """Zero coefficients (mean face, frontal, trans 0) decoded by the real Reconstructor after the
    ``--crop gt`` alignment: the predicted landmarks' square box equals the GT landmarks' square box."""
    from recon_cli.backends import load_backend
    from recon_cli.face.align import template, umeyama_similarity
    from recon_cli.morphable import load_default_model
    from recon_cli.pipeline.reconstruct import Reconstructor

    model = load_default_model()
    rec = Reconstructor(load_backend(onnx_encoder), model)
    box = canonical_box_in_crop(model, rec.cam)
    rng = np.random.default_rng(0)
    gt = np.stack([rng.uniform(300, 420, 68), rng.uniform(150, 330, 68)])
    lm5 = virtual_five_points(gt, template(rec.align_cfg), box)
    M = umeyama_similarity(lm5, template(rec.align_cfg))  # what align_face fits
    assert M == pytest.approx(gt_box_transform(gt, box), abs=1e-6)
    out = rec.build(np.zeros((1, rec.layout.total), np.float32), M[None], dense=False)[0]
    assert square_landmark_box(out.lm68.T.astype(np.float64)) == pytest.approx(square_landmark_box(gt), abs=1e-3)


@pytest.mark.data
def test_recon_method_runs_end_to_end(onnx_encoder, shared_data, tmp_path, capsys):
    from recon_cli.cli.app import main

    with pytest.raises(SystemExit) as e:
        main(["eval", "aflw2000", "--data", str(shared_data / "aflw2000-3d"), "--method", "recon", "--weights",
              str(onnx_encoder), "--crop", "both", "--limit", "4", "--quiet", "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr()
    assert e.value.code in (0, None), out.out + out.err
    assert "predicted |yaw|" in out.out
    runs = json.loads((tmp_path / "r.json").read_text())["runs"]
    assert [r["settings"]["crop"] for r in runs] == ["detector", "gt"]
    for r in runs:
        assert r["settings"]["method"] == "recon" and r["settings"]["backend"].startswith("onnx")
        assert r["summary"]["n"] == 4 and all(np.isfinite(x["nme_pct"]) for x in r["per_image"])
        # the encoder's head yaw per image, and its |yaw| error against the label by bin
        yp = np.array([x["yaw_pred_deg"] for x in r["per_image"]])
        assert np.isfinite(yp).all() and (np.abs(yp) <= 180).all()
        d = np.abs(yp) - np.abs([x["yaw_deg"] for x in r["per_image"]])
        bins = np.array([x["bin"] for x in r["per_image"]])
        for b in range(3):
            got = r["pose"]["abs_yaw_bias"][b]
            assert got is None if not (bins == b).any() else got == pytest.approx(d[bins == b].mean())
        # the default jaw convention: AFLW2000-3D's BFM contour and spacing, template found beside the data
        assert r["settings"]["contour"]["rule"] == "bfm"
        assert r["settings"]["contour"]["template"].endswith("bfm-topology/similarity_Lm3D_all.mat")
        # and its inner points: BFM template vs the teacher's canonical face, found beside the data
        assert r["settings"]["inner"]["rule"] == "bfm"
        assert r["settings"]["inner"]["teacher"].endswith("mediapipe/face_landmarker.task")
    assert "BFM jaw, BFM inner" in out.out
    with pytest.raises(SystemExit) as e:
        main(["eval", "aflw2000", "--data", str(shared_data / "aflw2000-3d"), "--weights", str(onnx_encoder),
              "--limit", "1", "--quiet", "--bfm-template", str(tmp_path / "none.mat")])
    out = capsys.readouterr()
    msg = " ".join((out.out + out.err).split())
    assert e.value.code == 2 and "BFM landmark template not found" in msg and "--contour model --inner model" in msg
    with pytest.raises(SystemExit) as e:
        main(["eval", "aflw2000", "--data", str(shared_data / "aflw2000-3d"), "--weights", str(onnx_encoder),
              "--limit", "1", "--quiet", "--teacher-mesh", str(tmp_path / "none.task")])
    out = capsys.readouterr()
    msg = " ".join((out.out + out.err).split())  # the console wraps long lines
    assert e.value.code == 2 and "MediaPipe task bundle not found" in msg and "--inner model" in msg
    with pytest.raises(SystemExit) as e:
        main(["eval", "aflw2000", "--data", str(shared_data / "aflw2000-3d"), "--weights", str(onnx_encoder),
              "--limit", "2", "--quiet", "--contour", "model", "--inner", "model", "--bfm-template",
              str(tmp_path / "none.mat"), "--json", str(tmp_path / "m.json")])
    assert e.value.code in (0, None)
    run = json.loads((tmp_path / "m.json").read_text())["runs"][0]
    assert run["settings"]["contour"] == {"rule": "model", "template": None}
    assert run["settings"]["inner"] == {"rule": "model", "template": None, "teacher": None}


@pytest.mark.data
def test_gt_align_mesh_aligns_like_the_detector_on_a_frontal_face(onnx_encoder, shared_data):
    """``gt_align="mesh"``: the FaceMesh model on the GT ROI box gives the same 5 alignment points
    as the full detector pipeline (a few % of the eye distance) on a near-frontal face; ``box``
    places the box without landmarks and differs."""
    import cv2

    from recon_cli.eval.aflw2000_data import Aflw2000
    from recon_cli.eval.predictors import ReconPredictor

    ds = Aflw2000(shared_data / "aflw2000-3d")
    sample = next(s for s in ds.samples() if abs(s.yaw_deg) < 15)
    img = cv2.imread(str(sample.image_path))
    used: dict[str, np.ndarray] = {}
    for mode in ("mesh", "box"):
        p = ReconPredictor(onnx_encoder, gt_align=mode)
        run = p._run
        p._run = lambda image, lm5, _m=mode, _r=run: (used.__setitem__(_m, np.asarray(lm5)), _r(image, lm5))[1]
        try:
            assert p.settings()["gt_align"] == mode
            pred = p.predict_gt_box(img, sample.gt68)
            assert pred.shape == (2, 68) and np.isfinite(pred).all()
            if mode == "mesh":
                faces = p.detect(img)
                det5 = p._faces[id(faces[0])].lm5
        finally:
            p.close()
    eye = np.linalg.norm(det5[0] - det5[1])
    d_mesh = np.linalg.norm(used["mesh"] - det5, axis=1)  # (5,) px; measured 1–9 % of the eye distance
    assert d_mesh.mean() < 0.06 * eye and d_mesh.max() < 0.15 * eye
    assert np.linalg.norm(used["box"] - used["mesh"], axis=1).mean() > 0.02 * eye


@pytest.mark.data
def test_flip_tta_is_mirror_consistent(shared_data):
    """``tta="flip"`` with the shipped encoder: predicting the mirror image (its 5 points mirrored)
    gives exactly the mirror of the prediction on the image (x → W − x, iBUG mirror order) and the
    negated yaw, which one crop alone does not (the encoder is not mirror-symmetric)."""
    pytest.importorskip("torch")
    import cv2

    from recon_cli.eval.aflw2000_data import Aflw2000
    from recon_cli.eval.predictors import ReconPredictor, default_weights
    from recon_cli.face.landmarks68 import MIRROR5, MIRROR68

    weights = default_weights()
    if weights is None:
        pytest.skip("no shipped weights in recon_cli/weights")
    sample = next(s for s in Aflw2000(shared_data / "aflw2000-3d").samples() if 35 < abs(s.yaw_deg) < 60)
    img = cv2.imread(str(sample.image_path))
    w = img.shape[1]
    mirror_img = np.ascontiguousarray(img[:, ::-1])

    def mirror(lm):  # (2, 68) or (5, 2) px → the same points on the mirror image
        lm = np.array(lm, dtype=np.float64)
        if lm.shape == (5, 2):
            lm = lm[MIRROR5]
            lm[:, 0] = w - lm[:, 0]
            return lm
        lm = lm[:, MIRROR68]
        lm[0] = w - lm[0]
        return lm

    gaps = {}
    for tta in ("none", "flip"):
        p = ReconPredictor(weights, threads=2, tta=tta)
        try:
            faces = p.detect(img)
            assert faces, "the detector found no face on the test image"
            lm5 = p._faces[id(faces[0])].lm5
            a, ya = p._run(img, lm5), p.last_yaw_deg
            b, yb = p._run(mirror_img, mirror(lm5)), p.last_yaw_deg
            assert p.settings()["tta"] == tta
        finally:
            p.close()
        assert np.isfinite(a).all() and abs(ya) > 20
        gaps[tta] = (np.abs(b - mirror(a)).max(), abs(ya + yb))
    assert gaps["flip"][0] < 0.05 and gaps["flip"][1] < 0.05, gaps
    assert gaps["none"][0] > 0.3, gaps  # one crop alone is not mirror-consistent: the check can fail
    with pytest.raises(Exception, match="tta must be one of"):
        ReconPredictor(weights, tta="rotate")
    with pytest.raises(Exception, match="jaw rule must be one of"):
        ReconPredictor(weights, jaw="sideways")
    with pytest.raises(Exception, match="teacher's jaw spacing"):  # the spacing needs the teacher's face
        ReconPredictor(weights, bfm_template=shared_data / "bfm-topology" / "similarity_Lm3D_all.mat")


@pytest.mark.data
def test_shipped_encoder_sees_sharp_photos_at_its_training_resolution(shared_data, capsys):
    """The shipped weights record their training faces' resolution; on AFLW2000-3D's sharp photos
    (~0.7 crop px per photo px, training ~1.8) the default crop is resampled to it: the crop
    geometry and the points' scale stay, the detail and so the prediction change; ``native`` and
    the CLI flag are recorded; MediaPipe, which has no crop of ours, refuses the flag."""
    pytest.importorskip("torch")
    import cv2

    from recon_cli.cli.app import main
    from recon_cli.eval.aflw2000_data import Aflw2000
    from recon_cli.eval.predictors import ReconPredictor, default_weights
    from recon_cli.face.align import similarity_scale

    weights = default_weights()
    if weights is None:
        pytest.skip("no shipped weights in recon_cli/weights")
    sample = next(s for s in Aflw2000(shared_data / "aflw2000-3d").samples() if abs(s.yaw_deg) < 20)
    img = cv2.imread(str(sample.image_path))
    preds, crops = {}, {}
    for res in ("train", "native"):
        p = ReconPredictor(weights, threads=2, source_res=res)
        try:
            faces = p.detect(img)
            lm5 = p._faces[id(faces[0])].lm5
            preds[res] = p._run(img, lm5)
            crops[res] = p._rec.align(np.ascontiguousarray(img[..., ::-1]), [lm5])[0]
            st = p.settings()
        finally:
            p.close()
        assert st["source_res"] == res
        scale = st["align"]["source_scale"]
        assert (1.5 < scale < 2.2) if res == "train" else scale is None
    assert similarity_scale(crops["train"].M) < 1.0 and np.array_equal(crops["train"].M, crops["native"].M)
    lap = {k: cv2.Laplacian(cv2.cvtColor(v.crop, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() for k, v in crops.items()}
    assert lap["train"] < 0.5 * lap["native"], lap  # finer detail than training had is gone
    gt = sample.gt68
    size = np.sqrt(np.ptp(gt[0]) * np.ptp(gt[1]))
    err = {k: np.linalg.norm(v - gt, axis=0).mean() / size for k, v in preds.items()}
    assert 0 < np.abs(preds["train"] - preds["native"]).max() and max(err.values()) < 0.08, err
    with pytest.raises(SystemExit) as e:
        main(["eval", "aflw2000", "--data", str(shared_data / "aflw2000-3d"), "--method", "mediapipe",
              "--source-res", "native", "--limit", "1", "--quiet"])
    out = capsys.readouterr()
    assert e.value.code == 2 and "--source-res applies to --method recon only" in " ".join((out.out + out.err).split())
