"""Basel Face Model importer (BFM 2009 + Guo et al.'s expression basis, Deep3DFaceRecon crop).

The Basel Face Model cannot be redistributed: users bring their own copy in one of two forms.

(a) ``BFM_model_front.mat`` in the Deep3DFaceRecon layout (what its ``transferBFM09`` writes):
    ``meanshape (1, 3V)``, ``idBase (3V, 80)``, ``exBase (3V, 64)`` in decimetres (BFM's
    micrometres / 1e5) with the bases already multiplied by their standard deviations;
    ``meantex (1, 3V)``, ``texBase (3V, 80)`` in 0–255; ``tri (F, 3)``, ``keypoints (1, 68)``
    and ``point_buf (V, 8)`` 1-based (``point_buf`` is not needed: the contract recomputes it).
    V = 35,709, F = 70,789 for the standard crop.
(b) the raw files, in one folder: ``01_MorphableModel.mat`` (``shapeMU (160470, 1)``,
    ``shapePC (160470, 199)``, ``shapeEV (199, 1)``, ``texMU``, ``texPC``, ``texEV``; µm and
    0–255), ``Exp_Pca.bin`` (int32 ``n``, float32 ``expMU (3·53215)``, float32 ``expPC (n, 3·53215)``),
    ``std_exp.txt`` (``n`` standard deviations) and Deep3DFaceRecon's index files
    ``BFM_front_idx.mat`` (``idx``: front vertex → expression-model vertex, 1-based),
    ``BFM_exp_idx.mat`` (``trimIndex``: expression-model vertex → BFM vertex, 1-based) and
    ``facemodel_info.mat`` (``tri``, ``keypoints``). Converted exactly as ``transferBFM09`` does
    (first 80 id / 64 exp / 80 tex modes, each multiplied by its standard deviation; note that
    the two index files' names are swapped relative to what they contain, as in the original).
    The index files may live in a separate ``topology`` folder.

Conversion to the contract: metres (µm / 1e6, or decimetres / 10), axes unchanged (BFM is
+x image-right, +y up, +z towards the viewer), centred on the mean shape's vertex centroid (as
Deep3DFaceRecon's ``recenter``), indices 0-based, albedo / 255. BFM's ``tri`` is already
counter-clockwise from outside (Deep3DFaceRecon's normal ``(v1 - v2) × (v2 - v3)`` equals the
right-hand-rule normal ``(v2 - v1) × (v3 - v1)``); the importer still checks it numerically (the
area-weighted normal of a face mesh points +z) and flips the triangles of a file that is not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from recon_cli.errors import InputError
from recon_cli.mesh.topology import face_normals
from recon_cli.morphable.model import MorphableModel

Progress = Callable[[str, int, int], None]

N_BFM = 53490  # vertices of BFM 2009
N_EXP = 53215  # vertices of the expression model (Guo et al.)
HINT = ("the Basel Face Model 2009 (01_MorphableModel.mat) is available from the University of Basel "
        "(https://faces.dmi.unibas.ch/bfm/ → BFM 2009, registration required); Exp_Pca.bin from "
        "https://github.com/Juyong/3DFace (Guo et al.); std_exp.txt, BFM_front_idx.mat, BFM_exp_idx.mat and "
        "facemodel_info.mat from Deep3DFaceRecon_pytorch's BFM/ folder; or run Deep3DFaceRecon's transferBFM09 "
        "and pass the BFM_model_front.mat it writes")
LICENCE = ("Basel Face Model 2009 (University of Basel; research licence: do not redistribute) with the "
           "expression basis of Guo et al. (CNN-based real-time dense face reconstruction, Exp_Pca.bin), "
           "cropped as in Deep3DFaceRecon. Converted by recon's importer; the converted file is bound by "
           "the same terms.")


def _loadmat(path: Path) -> dict:
    from scipy.io import loadmat

    if not path.is_file():
        raise InputError(f"BFM file not found: {path}", hint=HINT)
    try:
        return loadmat(str(path))
    except NotImplementedError:
        raise InputError(f"{path}: MATLAB v7.3 (HDF5) files are not supported",
                         hint="re-save it in MATLAB with save(..., '-v7') or with scipy.io.savemat") from None
    except Exception as e:  # scipy raises ValueError/TypeError/MatReadError for non-.mat data
        raise InputError(f"{path}: not a readable MATLAB .mat file ({e})", hint=HINT) from None


def _get(d: dict, key: str, path: Path, rows: int | None = None, cols: int | None = None,
         min_cols: int | None = None, size: int | None = None) -> np.ndarray:
    """``d[key]`` as a numeric 2-D array with the required shape, else an InputError naming
    ``path``, ``key``, the shape found and the shape expected."""
    if key not in d:
        found = ", ".join(sorted(k for k in d if not k.startswith("__")))
        raise InputError(f"{path}: key '{key}' is missing (found: {found})", hint=HINT)
    a = np.asarray(d[key])
    if a.dtype == object or not np.issubdtype(a.dtype, np.number):
        raise InputError(f"{path}: '{key}' is not a numeric array (dtype {a.dtype})", hint=HINT)
    want = []
    if size is not None:
        ok = a.size == size
        want.append(f"{size} values")
    else:
        ok = a.ndim == 2 and (rows is None or a.shape[0] == rows) and (cols is None or a.shape[1] == cols) \
            and (min_cols is None or a.shape[1] >= min_cols)
        want.append(f"({rows if rows is not None else 'N'}, "
                    f"{cols if cols is not None else (f'>= {min_cols}' if min_cols else 'K')})")
    if not ok:
        raise InputError(f"{path}: '{key}' has shape {a.shape}, expected {want[0]}", hint=HINT)
    if not np.isfinite(a).all():
        raise InputError(f"{path}: '{key}' contains NaN or Inf", hint=HINT)
    return a


def _indices(a: np.ndarray, n: int, path: Path, key: str) -> np.ndarray:
    """1-based MATLAB indices → 0-based int64, checked against ``[1, n]``."""
    i = np.rint(a).astype(np.int64) - 1
    if i.size and (i.min() < 0 or i.max() >= n):
        raise InputError(f"{path}: '{key}' has indices in [{i.min() + 1}, {i.max() + 1}], expected 1-based in [1, {n}]",
                         hint=HINT)
    return i


def _finish(name: str, mean: np.ndarray, id_b: np.ndarray, exp_b: np.ndarray, mean_tex: np.ndarray,
            tex_b: np.ndarray, tri: np.ndarray, keypoints: np.ndarray, source: str, meta: dict,
            where: Path) -> MorphableModel:
    """Shared tail: centre, orient triangles, check the scale, build the model.

    Inputs in metres / [0, 1]: ``mean (V, 3)``, ``*_b (K, V, 3)``, ``tri (F, 3)`` 0-based.
    """
    width = float(np.ptp(mean[:, 0]))
    if not 0.05 <= width <= 0.5:
        raise InputError(f"{where}: the mean face is {width:.4g} m wide after unit conversion; expected about 0.15 m "
                         "(BFM in micrometres, or decimetres in BFM_model_front.mat)", hint=HINT)
    centre = mean.mean(axis=0)
    mean = mean - centre
    flipped = bool(face_normals(mean, tri, normalize=False).sum(axis=0)[2] < 0)
    if flipped:
        tri = tri[:, [0, 2, 1]]
    meta = {**meta, "exp_kind": "pca", "triangles_flipped": flipped,
            "centre_source_m": [round(float(c), 6) + 0.0 for c in centre]}
    try:
        return MorphableModel(name=name, mean_shape=mean, id_basis=id_b, exp_basis=exp_b, mean_albedo=mean_tex,
                              tex_basis=tex_b, triangles=tri, landmarks68=keypoints, units="m", licence=LICENCE,
                              source=source, exp_names=[f"exp{k:02d}" for k in range(exp_b.shape[0])], meta=meta)
    except ValueError as e:
        raise InputError(f"{where}: inconsistent model: {e}", hint=HINT) from None


def _bases(a: np.ndarray, k: int, n_verts: int, scale: float) -> np.ndarray:
    """``(3V, K')`` column basis → ``(k, V, 3)`` float32, first ``k`` columns times ``scale``."""
    return (np.asarray(a[:, :k], dtype=np.float64) * scale).T.reshape(k, n_verts, 3).astype(np.float32)


def load_front_mat(path: str | Path, n_id: int = 80, n_exp: int = 64, n_tex: int = 80,
                   progress: Progress | None = None) -> MorphableModel:
    """Import ``BFM_model_front.mat`` (Deep3DFaceRecon layout, see the module docstring)."""
    path = Path(path)
    progress = progress or (lambda *a: None)
    progress("reading BFM_model_front.mat", 0, 2)
    d = _loadmat(path)
    mean = _get(d, "meanshape", path)
    if mean.size % 3:
        raise InputError(f"{path}: 'meanshape' has {mean.size} values, not a multiple of 3", hint=HINT)
    V = mean.size // 3
    id_b = _get(d, "idBase", path, rows=3 * V, min_cols=n_id)
    exp_b = _get(d, "exBase", path, rows=3 * V, min_cols=n_exp)
    mean_tex = _get(d, "meantex", path, size=3 * V)
    tex_b = _get(d, "texBase", path, rows=3 * V, min_cols=n_tex)
    tri = _indices(_get(d, "tri", path, cols=3), V, path, "tri")
    kp = _indices(_get(d, "keypoints", path, size=68).reshape(-1), V, path, "keypoints")
    progress("reading BFM_model_front.mat", 1, 2)
    dm = 0.1  # decimetres → metres
    model = _finish("bfm09", mean.reshape(V, 3) * dm, _bases(id_b, n_id, V, dm), _bases(exp_b, n_exp, V, dm),
                    mean_tex.reshape(V, 3) / 255.0, _bases(tex_b, n_tex, V, 1 / 255.0), tri, kp,
                    f"{path.name} (Deep3DFaceRecon BFM_model_front layout)",
                    {"importer": "bfm-front", "units_in_source": "dm"}, path)
    progress("reading BFM_model_front.mat", 2, 2)
    return model


def read_exp_pca(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``Exp_Pca.bin`` → ``expMU (3·N_EXP,) float32``, ``expPC (3·N_EXP, n) float32``."""
    if not path.is_file():
        raise InputError(f"BFM file not found: {path}", hint=HINT)
    raw = path.read_bytes()
    if len(raw) < 4:
        raise InputError(f"{path}: file too short ({len(raw)} bytes)", hint=HINT)
    n = int(np.frombuffer(raw, "<i4", 1)[0])
    want = 4 + 4 * 3 * N_EXP * (1 + max(n, 0))
    if n <= 0 or len(raw) != want:
        raise InputError(f"{path}: {len(raw)} bytes with a header of {n} modes; expected int32 n + float32 "
                         f"expMU (3·{N_EXP}) + expPC (n·3·{N_EXP}) = {want} bytes", hint=HINT)
    data = np.frombuffer(raw, "<f4", offset=4)
    return data[: 3 * N_EXP], data[3 * N_EXP:].reshape(n, 3 * N_EXP).T


def load_raw(folder: str | Path, topology: str | Path | None = None, n_id: int = 80, n_exp: int = 64,
             n_tex: int = 80, progress: Progress | None = None) -> MorphableModel:
    """Import the raw BFM 2009 files as Deep3DFaceRecon's ``transferBFM09`` (module docstring)."""
    folder = Path(folder)
    topo = Path(topology) if topology is not None else folder
    progress = progress or (lambda *a: None)
    steps = 5
    progress("reading 01_MorphableModel.mat", 0, steps)
    p_bfm = folder / "01_MorphableModel.mat"
    bfm = _loadmat(p_bfm)
    shape_mu = _get(bfm, "shapeMU", p_bfm, rows=3 * N_BFM, cols=1)
    shape_pc = _get(bfm, "shapePC", p_bfm, rows=3 * N_BFM, min_cols=max(n_id, 1))
    shape_ev = _get(bfm, "shapeEV", p_bfm, size=shape_pc.shape[1]).reshape(-1)
    tex_mu = _get(bfm, "texMU", p_bfm, rows=3 * N_BFM, cols=1)
    tex_pc = _get(bfm, "texPC", p_bfm, rows=3 * N_BFM, min_cols=max(n_tex, 1))
    tex_ev = _get(bfm, "texEV", p_bfm, size=tex_pc.shape[1]).reshape(-1)
    progress("reading Exp_Pca.bin", 1, steps)
    p_exp = folder / "Exp_Pca.bin"
    _, exp_pc = read_exp_pca(p_exp)
    if exp_pc.shape[1] < n_exp:
        raise InputError(f"{p_exp}: {exp_pc.shape[1]} expression modes, need at least {n_exp}", hint=HINT)
    p_std = next((p for p in (folder / "std_exp.txt", topo / "std_exp.txt") if p.is_file()), folder / "std_exp.txt")
    try:
        exp_ev = np.loadtxt(p_std, dtype=np.float64).reshape(-1)
    except (OSError, ValueError) as e:
        raise InputError(f"{p_std}: cannot read the expression standard deviations ({e})", hint=HINT) from None
    if exp_ev.size != exp_pc.shape[1]:
        raise InputError(f"{p_std}: {exp_ev.size} values, Exp_Pca.bin has {exp_pc.shape[1]} modes", hint=HINT)
    progress("reading index files", 2, steps)
    p_front, p_trim, p_info = topo / "BFM_front_idx.mat", topo / "BFM_exp_idx.mat", topo / "facemodel_info.mat"
    index_exp = _indices(_get(_loadmat(p_front), "idx", p_front, cols=1).reshape(-1), N_EXP, p_front, "idx")
    trim = _indices(_get(_loadmat(p_trim), "trimIndex", p_trim, size=N_EXP).reshape(-1), N_BFM, p_trim, "trimIndex")
    index_shape = trim[index_exp]
    V = len(index_exp)
    info = _loadmat(p_info)
    tri = _indices(_get(info, "tri", p_info, cols=3), V, p_info, "tri")
    kp = _indices(_get(info, "keypoints", p_info, size=68).reshape(-1), V, p_info, "keypoints")

    progress("converting", 3, steps)
    um = 1e-6  # micrometres → metres

    def crop(pc: np.ndarray, ev: np.ndarray, k: int, rows: np.ndarray, scale: float) -> np.ndarray:
        b = np.asarray(pc[:, :k], dtype=np.float64) * ev[:k][None, :] * scale  # (3N, k)
        return b.reshape(-1, 3, k)[rows].transpose(2, 0, 1).astype(np.float32)  # (k, V, 3)

    id_b = crop(shape_pc, shape_ev.astype(np.float64), n_id, index_shape, um)
    exp_b = crop(exp_pc, exp_ev, n_exp, index_exp, um)
    tex_b = crop(tex_pc, tex_ev.astype(np.float64), n_tex, index_shape, 1 / 255.0)
    mean = shape_mu.reshape(-1, 3)[index_shape].astype(np.float64) * um
    mean_tex = tex_mu.reshape(-1, 3)[index_shape].astype(np.float64) / 255.0
    progress("converting", 4, steps)
    model = _finish("bfm09", mean, id_b, exp_b, mean_tex, tex_b, tri, kp,
                    "01_MorphableModel.mat + Exp_Pca.bin (BFM 2009, Guo et al. expressions; Deep3DFaceRecon crop)",
                    {"importer": "bfm09-raw", "units_in_source": "um"}, p_bfm)
    progress("converting", steps, steps)
    return model


def build_bfm_model(src: str | Path, topology: str | Path | None = None, progress: Progress | None = None,
                    n_id: int = 80, n_exp: int = 64, n_tex: int = 80) -> MorphableModel:
    """``src``: a ``BFM_model_front.mat``, or a folder with the raw files (or with a front .mat)."""
    src = Path(src)
    if src.is_file():
        if src.name == "01_MorphableModel.mat":
            return load_raw(src.parent, topology, n_id, n_exp, n_tex, progress)
        return load_front_mat(src, n_id, n_exp, n_tex, progress)
    if src.is_dir():
        if (src / "01_MorphableModel.mat").is_file():
            return load_raw(src, topology, n_id, n_exp, n_tex, progress)
        if (src / "BFM_model_front.mat").is_file():
            return load_front_mat(src / "BFM_model_front.mat", n_id, n_exp, n_tex, progress)
        raise InputError(f"{src}: neither BFM_model_front.mat nor 01_MorphableModel.mat is in this folder", hint=HINT)
    raise InputError(f"BFM source not found: {src}", hint=HINT)


def import_bfm(src: str | Path, out: str | Path, topology: str | Path | None = None,
               progress: Progress | None = None) -> MorphableModel:
    """Convert and save (atomically) to ``out``."""
    model = build_bfm_model(src, topology, progress)
    model.save(out)
    return model
