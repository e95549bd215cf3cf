"""NIfTI/MGH reading, validation and atomic writing; data never travels without its affine."""

from __future__ import annotations

import os
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np
import torch

from nir.errors import NirInputError
from nir.spatial.geometry import voxel_sizes

if TYPE_CHECKING:  # pandas is only needed by callers that build frames
    import pandas as pd

AFFINE_ATOL_MM = 1e-3
GZIP_CHUNK = 1 << 24  # bytes compressed per zlib call


@dataclass
class Volume:
    """A 3D image: float32 tensor in nibabel (i, j, k) voxel order, with its voxel-to-RAS affine."""

    data: torch.Tensor
    affine: np.ndarray
    header: nib.nifti1.Nifti1Header
    path: str | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm along i, j, k."""
        return voxel_sizes(self.affine)


def _read(path: str | Path) -> tuple[nib.spatialimages.SpatialImage, np.ndarray]:
    """The image and its voxel array (scaled as stored), reading the file once."""
    path = Path(path)
    if not path.exists():
        raise NirInputError(path, "file does not exist")
    try:
        img = nib.load(str(path), mmap=False)
        data = np.asarray(img.dataobj)  # a full read, so truncated files fail here
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise NirInputError(path, f"unreadable as NIfTI/MGH ({type(exc).__name__}: {exc})") from exc
    return img, data


def _as_3d(data: np.ndarray, path: str | Path) -> np.ndarray:
    """``data`` without trailing singleton axes, which must leave a 3D volume, 2+ voxels a side."""
    shape = data.shape
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3 or min(data.shape) < 2:
        raise NirInputError(path, f"expected a 3D volume, got shape {shape}")
    return data


def _nifti_header(img: nib.spatialimages.SpatialImage) -> nib.nifti1.Nifti1Header:
    if isinstance(img, nib.Nifti1Image):
        return img.header.copy()
    return nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), img.affine).header


def same_grid(shape: tuple[int, ...], affine: np.ndarray, other_shape: tuple[int, ...],
              other_affine: np.ndarray) -> bool:
    """True when two voxel grids have the same shape and affine (within AFFINE_ATOL_MM)."""
    return tuple(shape) == tuple(other_shape) and np.allclose(affine, other_affine,
                                                              atol=AFFINE_ATOL_MM)


def check_grid(path: str | Path, shape: tuple[int, ...], affine: np.ndarray, like: Volume,
               what: str) -> None:
    """NirInputError naming ``path`` unless its voxel grid (``shape`` and ``affine``, within
    AFFINE_ATOL_MM) is that of ``like`` (``what``: its role, e.g. ``fixed image``)."""
    if tuple(shape) != like.shape:
        raise NirInputError(path, f"shape {tuple(shape)} differs from {what} shape {like.shape} "
                                  f"({like.path})")
    if not np.allclose(affine, like.affine, atol=AFFINE_ATOL_MM):
        raise NirInputError(path, f"affine differs from the {what} affine ({like.path}): same "
                                  "shape, another grid in world space")


def load_volume(path: str | Path) -> Volume:
    """Read an intensity image; reject unreadable, non-3D, non-finite or all-zero files."""
    img, raw = _read(path)
    data = np.ascontiguousarray(_as_3d(raw, path), dtype=np.float32)
    if not np.isfinite(data).all():
        raise NirInputError(path, f"contains {int((~np.isfinite(data)).sum())} NaN/Inf voxels")
    if not np.any(data):
        raise NirInputError(path, "image is all zero (empty)")
    return Volume(torch.from_numpy(data), img.affine.astype(np.float64), _nifti_header(img),
                  str(path))


def load_labels(path: str | Path, like: Volume | None = None) -> Volume:
    """Read an integer label map; if ``like`` is given its shape and affine must match.

    Integer voxel types are taken as stored; float (or scaled) ones must hold whole numbers
    (within ``np.allclose``) and are rounded, as float32.
    """
    img, raw = _read(path)
    data = _as_3d(raw, path)
    if data.dtype.kind not in "iu":
        data = data.astype(np.float32)
        if not np.isfinite(data).all():
            raise NirInputError(path, "label map contains NaN/Inf voxels")
        if not np.allclose(data, np.round(data)):
            raise NirInputError(path, "label map has non-integer values")
    if not np.any(data):
        raise NirInputError(path, "label map is all zero (no labels)")
    if like is not None:
        check_grid(path, data.shape, img.affine, like, "image")
    if data.dtype.kind == "f":
        data = np.round(data)
    labels = torch.from_numpy(np.ascontiguousarray(data, dtype=np.int64))
    return Volume(labels, img.affine.astype(np.float64), _nifti_header(img), str(path))


def atomic_path(path: str | Path) -> tuple[Path, Path]:
    """A temporary sibling of ``path`` with the same suffixes, and the final path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) or ".tmp"
    stem = path.name.split(".")[0]
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(tmp), path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def commit(tmp: Path, final: Path) -> None:
    """Move a finished temporary file into place (atomic on one filesystem).

    ``mkstemp`` creates files readable by the owner only; the final file gets the usual
    permissions (0666 minus the umask), so results stay readable by a lab group.
    """
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, final)


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; rename it into place on success.

    On any error the temporary file is removed and ``path`` is left as it was.
    """
    tmp, final = atomic_path(path)
    try:
        yield tmp
        commit(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_files(paths: Iterable[str | Path]) -> Iterator[list[Path]]:
    """Yield a temporary sibling for each of ``paths``; rename them all into place on success.

    On any error (a signal turned into an exception included) every temporary file is removed
    and no final path is touched, so a failed call leaves none of its outputs half-written.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for path in paths:
            staged.append(atomic_path(path))
        yield [tmp for tmp, _ in staged]
        for tmp, final in staged:
            commit(tmp, final)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def write_text(text: str, path: str | Path) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """Write ``frame`` to ``path`` atomically (no partial file on failure)."""
    write_text(frame.to_csv(index=False, float_format="%.6g"), path)


def save_volume(data: np.ndarray | torch.Tensor, affine: np.ndarray, path: str | Path,
                header: nib.nifti1.Nifti1Header | None = None, dtype: type | None = None,
                intent: str | None = None, slope: float | None = None,
                atomic: bool = True) -> Path:
    """Write ``data`` with ``affine`` (and the reference ``header``) atomically.

    ``slope`` stores integer ``data`` as ``data * slope`` (NIfTI ``scl_slope``).  With
    ``atomic=False`` ``path`` is written in place: it is already a temporary file, e.g. one
    of :func:`atomic_files`.
    """
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    data = np.asarray(data)
    if dtype is not None:
        data = data.astype(dtype)
    hdr = header.copy() if header is not None else None
    img = nib.Nifti1Image(data, affine, header=hdr)
    img.set_data_dtype(data.dtype)
    img.header.set_xyzt_units("mm", "sec")
    if intent is not None:
        img.header.set_intent(intent)
    sform_code = int(hdr["sform_code"]) if hdr is not None and int(hdr["sform_code"]) > 0 else 1
    img.set_sform(affine, code=sform_code)
    img.set_qform(affine, code=sform_code)
    if data.dtype.kind == "f" or slope is not None:
        img.header.set_slope_inter(1.0 if slope is None else slope, 0.0)
    if not atomic:
        write_nifti(img, path)
        return Path(path)
    with atomic_write(path) as tmp:
        write_nifti(img, tmp)
    return Path(path)


def write_nifti(img: nib.Nifti1Image, path: str | Path) -> None:
    """Write ``img`` to ``path``; a ``.gz`` path is gzip-compressed at level 1, float data with
    zlib's run-length strategy.

    Float maps (warps, det J) are mostly incompressible mantissa bits: the default LZ77 search
    spends 2.8 s on a 1 mm warp to shrink it to 0.89 of its size, run-length coding 1.6 s for
    0.91, and zero backgrounds compress as well as before.  Label maps keep the default search,
    which halves them again.  The file is a standard gzip stream.
    """
    if not str(path).endswith(".gz"):
        nib.save(img, str(path))
        return
    raw = memoryview(img.to_bytes())
    strategy = zlib.Z_RLE if img.get_data_dtype().kind == "f" else zlib.Z_DEFAULT_STRATEGY
    packer = zlib.compressobj(1, zlib.DEFLATED, 31, 9, strategy)  # wbits 31: gzip framing
    with open(path, "wb") as out:
        for start in range(0, len(raw), GZIP_CHUNK):
            out.write(packer.compress(raw[start:start + GZIP_CHUNK]))
        out.write(packer.flush())
