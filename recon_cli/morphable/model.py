"""The morphable model contract.

A :class:`MorphableModel` holds a linear shape model (mean + identity + expression bases), a
linear albedo model (mean + texture basis), the triangle list, the 68 landmark vertices and the
per-vertex face adjacency used for normals. Every morphable model the project uses (the shipped
ICT-FaceKit default, a user's Basel Face Model) is converted into this one form by an importer
and stored as one compact ``.npz`` file.

Frames and units
----------------
* Model space is right-handed: +x to the image right of a frontal face (the subject's left),
  +y up, +z out of the face towards the camera. Units: metres (``units == "m"``).
* The model is centred so that the origin lies roughly at the centre of the head behind the
  nose (importers document their choice); a frontal, centred face has ``angles = trans = 0``.
* Triangles are counter-clockwise seen from outside the face (outward normals, +z for a
  frontal face).
* Bases are pre-scaled: a coefficient of 1.0 moves the mesh by one standard deviation of that
  mode (``id``, ``tex``) or applies one full blendshape (``exp``), so the paper's L2
  regularisation weights apply directly.
* Albedo is linear RGB in [0, 1] per vertex.

Shapes: ``V`` vertices, ``F`` triangles, ``B`` batch, ``K_*`` basis sizes.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recon_cli.atomic import atomic_path
from recon_cli.errors import InputError
from recon_cli.paths import DEFAULT_MODEL_PATH

FORMAT_VERSION = 1
_ARRAYS = ("mean_shape", "id_basis", "exp_basis", "mean_albedo", "tex_basis", "triangles", "landmarks68")
_BASES = ("id_basis", "exp_basis", "tex_basis")


def _vertex_faces(triangles: np.ndarray, n_verts: int) -> np.ndarray:
    """Per-vertex incident triangles: ``(V, M) int64`` padded with -1, M = max valence."""
    tri = triangles.reshape(-1).astype(np.int64)
    face = np.repeat(np.arange(len(triangles), dtype=np.int64), 3)
    order = np.argsort(tri, kind="stable")
    tri, face = tri[order], face[order]
    counts = np.bincount(tri, minlength=n_verts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(tri)) - starts[tri]
    out = np.full((n_verts, max(int(counts.max(initial=0)), 1)), -1, dtype=np.int64)
    out[tri, rank] = face
    return out


@dataclass(eq=False)
class MorphableModel:
    """A linear 3D morphable model (see the module docstring for frames and units).

    Attributes:
        name: short identifier, e.g. ``"ict-facekit"`` or ``"bfm09"``.
        mean_shape: ``(V, 3) float32``, metres.
        id_basis: ``(K_id, V, 3) float32``, metres per unit coefficient.
        exp_basis: ``(K_exp, V, 3) float32``, metres per unit coefficient.
        mean_albedo: ``(V, 3) float32``, linear RGB in [0, 1].
        tex_basis: ``(K_tex, V, 3) float32``, albedo per unit coefficient.
        triangles: ``(F, 3) int32`` vertex indices, counter-clockwise from outside.
        landmarks68: ``(68,) int64`` vertex indices in the iBUG/300W order.
        units: length unit of the shape arrays (always ``"m"`` for models made by importers).
        licence: licence notice to carry with the model and derived files.
        source: where the model came from (archive name, files).
        exp_names: names of the expression modes (blendshape names for ICT).
        meta: any further JSON-serialisable metadata (importer settings, kept vertex ranges).
    """

    name: str
    mean_shape: np.ndarray
    id_basis: np.ndarray
    exp_basis: np.ndarray
    mean_albedo: np.ndarray
    tex_basis: np.ndarray
    triangles: np.ndarray
    landmarks68: np.ndarray
    units: str = "m"
    licence: str = ""
    source: str = ""
    exp_names: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
        self.mean_shape, self.mean_albedo = f32(self.mean_shape), f32(self.mean_albedo)
        self.id_basis, self.exp_basis, self.tex_basis = f32(self.id_basis), f32(self.exp_basis), f32(self.tex_basis)
        self.triangles = np.ascontiguousarray(self.triangles, dtype=np.int32)
        self.landmarks68 = np.ascontiguousarray(self.landmarks68, dtype=np.int64)
        self.validate()
        self.vertex_faces = _vertex_faces(self.triangles, self.n_verts)
        self._torch_cache: dict[Any, dict[str, Any]] = {}

    # ------------------------------------------------------------------ properties
    @property
    def n_verts(self) -> int:
        return self.mean_shape.shape[0]

    @property
    def n_faces(self) -> int:
        return self.triangles.shape[0]

    @property
    def n_id(self) -> int:
        return self.id_basis.shape[0]

    @property
    def n_exp(self) -> int:
        return self.exp_basis.shape[0]

    @property
    def n_tex(self) -> int:
        return self.tex_basis.shape[0]

    def validate(self) -> None:
        """Check shapes and index ranges; raises ``ValueError`` naming the bad field."""
        V = self.mean_shape.shape[0]
        checks = [
            ("mean_shape", self.mean_shape, (V, 3)),
            ("mean_albedo", self.mean_albedo, (V, 3)),
            ("id_basis", self.id_basis, (None, V, 3)),
            ("exp_basis", self.exp_basis, (None, V, 3)),
            ("tex_basis", self.tex_basis, (None, V, 3)),
            ("triangles", self.triangles, (None, 3)),
            ("landmarks68", self.landmarks68, (68,)),
        ]
        for name, arr, want in checks:
            if arr.ndim != len(want) or any(w is not None and w != s for w, s in zip(want, arr.shape)):
                raise ValueError(f"{name} has shape {arr.shape}, expected {tuple('K' if w is None else w for w in want)} (V={V})")
        for name in ("triangles", "landmarks68"):
            arr = getattr(self, name)
            if arr.size and (arr.min() < 0 or arr.max() >= V):
                raise ValueError(f"{name} indexes vertices outside [0, {V})")
        for name in ("mean_shape", "mean_albedo", *_BASES):
            if not np.isfinite(getattr(self, name)).all():
                raise ValueError(f"{name} contains NaN or Inf")

    # ------------------------------------------------------------------ decoding
    def decode(self, id_coeff, exp_coeff, tex_coeff):
        """Coefficients → mesh.

        Args:
            id_coeff: ``(B, K_id)``, exp_coeff: ``(B, K_exp)``, tex_coeff: ``(B, K_tex)``; all
                NumPy arrays or all torch tensors (then on any device/dtype; the bases follow).
        Returns:
            ``verts (B, V, 3)`` in metres (model space) and ``albedo (B, V, 3)`` in [0, 1]
            (not clipped), of the same array type as the input.
        """
        return self.shape(id_coeff, exp_coeff), self.albedo(tex_coeff)

    def shape(self, id_coeff, exp_coeff):
        """``S = S̄ + B_id·id + B_exp·exp`` → ``(B, V, 3)``."""
        if _is_torch(id_coeff):
            t = self.torch_arrays(id_coeff.device, id_coeff.dtype)
            flat = t["mean_shape"] + id_coeff @ t["id_basis"] + exp_coeff @ t["exp_basis"]
            return flat.reshape(flat.shape[0], -1, 3)
        id_coeff, exp_coeff = np.atleast_2d(id_coeff), np.atleast_2d(exp_coeff)
        flat = (self.mean_shape.reshape(1, -1) + id_coeff @ self.id_basis.reshape(self.n_id, -1)
                + exp_coeff @ self.exp_basis.reshape(self.n_exp, -1))
        return flat.reshape(flat.shape[0], -1, 3).astype(np.float32, copy=False)

    def albedo(self, tex_coeff):
        """``T = T̄ + B_tex·tex`` → ``(B, V, 3)``."""
        if _is_torch(tex_coeff):
            t = self.torch_arrays(tex_coeff.device, tex_coeff.dtype)
            flat = t["mean_albedo"] + tex_coeff @ t["tex_basis"]
            return flat.reshape(flat.shape[0], -1, 3)
        tex_coeff = np.atleast_2d(tex_coeff)
        flat = self.mean_albedo.reshape(1, -1) + tex_coeff @ self.tex_basis.reshape(self.n_tex, -1)
        return flat.reshape(flat.shape[0], -1, 3).astype(np.float32, copy=False)

    def torch_arrays(self, device=None, dtype=None) -> dict[str, Any]:
        """Model arrays as torch tensors on ``device``, cached. Bases are flattened to
        ``(K, 3V)`` and means to ``(3V,)`` for the decode GEMMs; ``triangles (F, 3)``,
        ``landmarks68 (68,)`` and ``vertex_faces (V, M)`` are int64."""
        import torch

        dtype = dtype or torch.float32
        key = (str(device), dtype)
        if key not in self._torch_cache:
            f = lambda a: torch.as_tensor(a.reshape(a.shape[0], -1) if a.ndim == 3 else a.reshape(-1), dtype=dtype, device=device)  # noqa: E731
            i = lambda a: torch.as_tensor(a, dtype=torch.int64, device=device)  # noqa: E731
            self._torch_cache[key] = {
                "mean_shape": f(self.mean_shape), "id_basis": f(self.id_basis), "exp_basis": f(self.exp_basis),
                "mean_albedo": f(self.mean_albedo), "tex_basis": f(self.tex_basis),
                "triangles": i(self.triangles), "landmarks68": i(self.landmarks68),
                "vertex_faces": i(self.vertex_faces),
            }
        return self._torch_cache[key]

    # ------------------------------------------------------------------ metadata
    def info(self) -> dict[str, Any]:
        """Summary for ``recon model info``."""
        return {
            "name": self.name, "format_version": FORMAT_VERSION, "units": self.units,
            "vertices": self.n_verts, "triangles": self.n_faces,
            "id_dims": self.n_id, "exp_dims": self.n_exp, "tex_dims": self.n_tex,
            "landmarks": int(self.landmarks68.shape[0]), "source": self.source,
            "licence": self.licence.strip().splitlines()[0] if self.licence.strip() else "",
            "hash": self.content_hash(), **({"meta": _summarise(self.meta)} if self.meta else {}),
        }

    def content_hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the arrays as stored: identifies a model in exports."""
        h = hashlib.sha256()
        for name in _ARRAYS:
            arr = getattr(self, name)
            if name in _BASES:
                arr = arr.astype(np.float16)
            h.update(name.encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:16]

    # ------------------------------------------------------------------ storage
    def save(self, path: str | Path, basis_dtype: str = "float16") -> Path:
        """Write one compressed ``.npz`` atomically. Bases are stored as ``basis_dtype``
        (float16 by default: relative error ~5e-4, well under a micrometre for face-sized modes)."""
        path = Path(path)
        arrays = {name: getattr(self, name) for name in _ARRAYS}
        for name in _BASES:
            arrays[name] = arrays[name].astype(basis_dtype)
        header = {"format_version": FORMAT_VERSION, "name": self.name, "units": self.units,
                  "licence": self.licence, "source": self.source, "exp_names": list(self.exp_names),
                  "meta": self.meta}
        arrays["header"] = np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8)
        with atomic_path(path, suffix=".npz") as tmp:
            _savez_deterministic(tmp, arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "MorphableModel":
        """Load a model file written by :meth:`save`; raises :class:`InputError` naming the
        file and the problem if it is missing, not a model file, of another format version, or
        inconsistent."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"morphable model file not found: {path}",
                             hint="pass an existing .npz made by `recon model import-ict` or `recon model import-bfm`")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except Exception as e:  # zipfile/np errors: not an npz
            raise InputError(f"{path} is not a readable morphable model (.npz): {e}",
                             hint="re-create it with `recon model import-ict` or `recon model import-bfm`") from None
        missing = [k for k in (*_ARRAYS, "header") if k not in data]
        if missing:
            raise InputError(f"{path} is not a recon morphable model: missing arrays {missing}",
                             hint="re-create it with `recon model import-ict` or `recon model import-bfm`")
        header = json.loads(bytes(data.pop("header")).decode())
        if header.get("format_version") != FORMAT_VERSION:
            raise InputError(f"{path} has model format version {header.get('format_version')}, this recon reads {FORMAT_VERSION}",
                             hint="re-import the model with this version of recon")
        try:
            return cls(name=header["name"], units=header.get("units", "m"), licence=header.get("licence", ""),
                       source=header.get("source", ""), exp_names=header.get("exp_names", []),
                       meta=header.get("meta", {}), **{k: data[k] for k in _ARRAYS})
        except ValueError as e:
            raise InputError(f"{path}: inconsistent morphable model: {e}") from None


def _savez_deterministic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed`` but with fixed zip timestamps, so that rebuilding a model
    from the same sources gives a byte-identical file."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue(), compresslevel=6)


def _summarise(obj: Any, max_items: int = 12) -> Any:
    """Metadata for display: lists longer than ``max_items`` become ``"<N items>"``."""
    if isinstance(obj, dict):
        return {k: _summarise(v, max_items) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return f"<{len(obj)} items>" if len(obj) > max_items else [_summarise(v, max_items) for v in obj]
    return obj


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def load_model(path: str | Path | None = None) -> MorphableModel:
    """Load ``path``, or the shipped default (ICT-FaceKit) when ``path`` is None."""
    return load_default_model() if path is None else MorphableModel.load(path)


def load_default_model() -> MorphableModel:
    """The ICT-FaceKit model shipped in the package (``recon_cli/morphable/assets``)."""
    if not DEFAULT_MODEL_PATH.is_file():
        raise InputError(f"the shipped default model is missing: {DEFAULT_MODEL_PATH}",
                         hint="rebuild it with `recon model import-ict ../shared/data/ict-facekit "
                              f"--out {DEFAULT_MODEL_PATH}` or reinstall recon")
    return MorphableModel.load(DEFAULT_MODEL_PATH)
