"""One-page visual QC of a registration: images, difference, checkerboard, det J and warped grid.

Every image is reoriented to RAS and shown as its middle axial slice (subject's right on the
right, anterior up).  Intensities are scaled to [0, 1] by each image's 99th percentile of non-zero
voxels, so the difference and checkerboard panels compare shapes, not scanner units.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from nir.errors import NirInputError
from nir.evaluation.metrics import jacobian_determinant
from nir.spatial.displacement import load_warp
from nir.spatial.intensity import percentile_scale
from nir.spatial.io import Volume, atomic_write, check_grid, load_volume

GRID_LINES = 32
CHECKER_TILES = 8
QC_DPI = 100
FIXED = "fixed image"  # the grid every other input of a panel must share


def read_itk_displacement(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(displacement in voxel units of shape (I, J, K, 3), 4x4 affine) of an ITK/ANTs warp.

    Read with :func:`nir.spatial.displacement.load_warp` (LPS mm -> RAS mm), then mapped to voxel
    axes with inv(affine[:3, :3]).
    """
    ras, affine, _ = load_warp(path)
    return ras.numpy().astype(np.float64) @ np.linalg.inv(affine[:3, :3]).T, affine


def _ornt(affine: np.ndarray) -> np.ndarray:
    return nib.orientations.io_orientation(affine)


def to_ras(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Reorder and flip voxel axes of ``array`` (3 leading dims) to the closest RAS orientation."""
    return nib.orientations.apply_orientation(array, _ornt(affine))


def displacement_to_ras(disp_vox: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """A voxel displacement (I, J, K, 3) re-expressed on the RAS-reoriented voxel grid."""
    ornt = _ornt(affine)
    moved = to_ras(disp_vox, affine)
    out = np.empty_like(moved)
    for axis, (new_axis, flip) in enumerate(ornt):
        out[..., int(new_axis)] = flip * moved[..., axis]
    return out


def _unit(image: np.ndarray) -> np.ndarray:
    return percentile_scale(image, image > 0, high=99.0)


def _slice(volume: np.ndarray) -> np.ndarray:
    """Middle axial slice of a RAS-oriented volume, transposed for imshow(origin='lower')."""
    return volume[:, :, volume.shape[2] // 2].T


def checkerboard(a: np.ndarray, b: np.ndarray, tiles: int = CHECKER_TILES) -> np.ndarray:
    """Alternate square tiles of two equally shaped 2D images."""
    rows, cols = np.indices(a.shape)
    size = max(1, max(a.shape) // tiles)
    return np.where(((rows // size) + (cols // size)) % 2 == 0, a, b)


def _load_on(path: str | Path, fixed: Volume) -> np.ndarray:
    """The image at ``path``, which must lie on the fixed image's grid (shape and affine)."""
    volume = load_volume(path)
    check_grid(path, volume.shape, volume.affine, fixed, FIXED)
    return volume.data.numpy()


def _show(ax, image: np.ndarray, title: str, **kwargs) -> AxesImage:
    kwargs.setdefault("cmap", "gray")
    handle = ax.imshow(image, origin="lower", interpolation="nearest", **kwargs)
    ax.set_title(title, fontsize="medium")
    ax.set_axis_off()
    return handle


def _draw_grid(ax, disp_slice: np.ndarray, background: np.ndarray) -> None:
    """Deformed grid x + u(x) of the in-plane displacement (I, J, 2) over a faint background."""
    ax.imshow(background, origin="lower", cmap="gray", alpha=0.35, interpolation="nearest")
    ni, nj = disp_slice.shape[:2]
    step = max(1, max(ni, nj) // GRID_LINES)
    ii, jj = np.meshgrid(np.arange(ni), np.arange(nj), indexing="ij")
    xs, ys = ii + disp_slice[..., 0], jj + disp_slice[..., 1]
    for j in range(0, nj, step):
        ax.plot(xs[:, j], ys[:, j], color="tab:red", linewidth=0.5)
    for i in range(0, ni, step):
        ax.plot(xs[i, :], ys[i, :], color="tab:red", linewidth=0.5)
    ax.set_xlim(-0.5, ni - 0.5)
    ax.set_ylim(-0.5, nj - 0.5)
    ax.set_aspect("equal")
    ax.set_title("deformed grid", fontsize="medium")
    ax.set_axis_off()


def _slab_jacobian(disp_ras: np.ndarray) -> np.ndarray:
    """det J on the middle axial slice, from a three-slice slab of the RAS displacement."""
    k = disp_ras.shape[2] // 2
    lo, hi = max(k - 1, 0), min(k + 2, disp_ras.shape[2])
    return jacobian_determinant(disp_ras[:, :, lo:hi])[:, :, k - lo].T


def qc_panel(fixed: str | Path, moving: str | Path, warped: str | Path,
             jacobian: str | Path | None, warp: str | Path | np.ndarray,
             out_png: str | Path) -> Path:
    """Write one PNG QC panel for a registered pair.

    ``warp`` is an ITK displacement file or a voxel displacement array (I, J, K, 3) on the fixed
    grid; ``jacobian`` is a det J file, or None to compute det J from ``warp``.
    """
    fixed_vol = load_volume(fixed)
    affine, shape = fixed_vol.affine, fixed_vol.shape
    moving_vol = load_volume(moving)
    warped_np = _load_on(warped, fixed_vol)
    if isinstance(warp, np.ndarray):
        disp = warp
        if disp.shape != (*shape, 3):
            raise NirInputError(None, f"displacement shape {disp.shape} does not match the "
                                      f"fixed image grid {shape} ({fixed})")
    else:
        disp, warp_affine = read_itk_displacement(warp)
        check_grid(warp, disp.shape[:3], warp_affine, fixed_vol, FIXED)
    disp_ras = displacement_to_ras(disp, affine)
    if jacobian is None:
        detj = _slab_jacobian(disp_ras)
    else:
        detj = _slice(to_ras(_load_on(jacobian, fixed_vol), affine))

    f = _slice(to_ras(_unit(fixed_vol.data.numpy()), affine))
    m = _slice(to_ras(_unit(moving_vol.data.numpy()), moving_vol.affine))
    w = _slice(to_ras(_unit(warped_np), affine))
    k = disp_ras.shape[2] // 2
    in_plane = disp_ras[:, :, k, :2]

    fig = Figure(figsize=(16, 8.5))
    axes = fig.subplots(2, 4).ravel()
    _show(axes[0], f, "fixed", vmin=0, vmax=1)
    _show(axes[1], m, "moving", vmin=0, vmax=1)
    _show(axes[2], w, "warped", vmin=0, vmax=1)
    diff = _show(axes[3], np.abs(f - w), "|fixed − warped|", cmap="magma", vmin=0, vmax=0.5)
    fig.colorbar(diff, ax=axes[3], fraction=0.046)
    _show(axes[4], checkerboard(f, w), "checkerboard fixed / warped", vmin=0, vmax=1)
    lo, hi = min(float(detj.min()), 0.0), max(float(detj.max()), 2.0)
    jac = _show(axes[5], detj, "det J", cmap="RdBu_r", norm=TwoSlopeNorm(1.0, lo, hi))
    fig.colorbar(jac, ax=axes[5], fraction=0.046)
    _draw_grid(axes[6], in_plane, f)
    folded = float((detj[f > 0] <= 0).mean() * 100) if np.any(f > 0) else float("nan")
    axes[7].hist(detj[f > 0].ravel(), bins=60, color="tab:blue")
    axes[7].axvline(0.0, color="tab:red", linewidth=0.8)
    axes[7].axvline(1.0, color="black", linewidth=0.8, linestyle="--")
    axes[7].set_title(f"det J in slice (folded {folded:.3f} %)", fontsize="medium")
    fig.suptitle(f"{Path(str(moving)).name} → {Path(str(fixed)).name}  (middle axial slice, "
                 f"R on the right)")

    with atomic_write(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=QC_DPI, bbox_inches="tight")
    return Path(out_png)
