"""The steps of unbiased study-template construction (the rounds: nir.study.template_plan).

Iteration ``k`` registers every subject (moving) onto the template ``T_k`` (fixed), giving
pull-back displacements ``u_s``: the template point ``x`` shows the subject point
``x + u_s(x)``.  Their mean ``ubar`` says where the cohort's centre lies seen from ``T_k``; the
next template is drawn in the frame where that mean is zero, ``psi^-1`` with ``psi = id + ubar``:

    T_{k+1}(y) = mean_s  I_s(phi_s(psi^-1(y)))

each subject's normalised image resampled once through the composition (no image is
interpolated twice).  ``psi^-1`` is found by fixed-point iteration, ``w <- -ubar(y + w)``, which
converges while ``ubar`` is a contraction (its Jacobian's norm below 1, as for any mean of smooth
registrations).  The maps to ``T_{k+1}`` are then ``phi_s o psi^-1``, whose mean is the identity.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage

from nir.errors import NirInputError
from nir.evaluation.labels import ASEG_STRUCTURES
from nir.spatial.displacement import load_warp
from nir.spatial.geometry import sample, voxel_sizes
from nir.spatial.io import Volume, load_labels, load_volume, same_grid
from nir.spatial.overlap import dice_per_label, mean_dice
from nir.spatial.warp import moving_coordinates, warp_image

FOREGROUND = 0.05  # of the normalised intensity: the template's foreground
INVERSE_ITERATIONS = 30
INVERSE_TOLERANCE_MM = 1e-3
SHARPNESS_EROSION_MM = 4.0
PERCENTILE = 99.5


@dataclass
class Grid:
    """A voxel grid: shape, voxel-to-RAS affine and the header its outputs carry."""

    shape: tuple[int, int, int]
    affine: np.ndarray
    header: nib.nifti1.Nifti1Header

    @classmethod
    def of(cls, volume: Volume) -> Grid:
        return cls(volume.shape, volume.affine, volume.header)

    @property
    def spacing(self) -> np.ndarray:
        return voxel_sizes(self.affine)


def normalised(data: torch.Tensor) -> torch.Tensor:
    """``data`` scaled so that the 99.5th percentile of its non-zero voxels is 1."""
    values = data[data > 0].float()
    if values.numel() > 4_000_000:
        values = values[:: values.numel() // 4_000_000 + 1]
    top = float(np.percentile(values.numpy(), PERCENTILE)) if values.numel() else 1.0
    return data.float() / max(top, 1e-6)


def load_images(paths: Sequence[str | Path]) -> list[Volume]:
    """Read the cohort's images; they must share one grid (the preprocessed template grid)."""
    if len(paths) < 2:
        raise NirInputError(None, f"a template needs at least 2 images, got {len(paths)}")
    volumes = [load_volume(p) for p in paths]
    first = volumes[0]
    for v in volumes[1:]:
        if not same_grid(v.shape, v.affine, first.shape, first.affine):
            raise NirInputError(v.path, f"grid differs from {first.path}: template images must "
                                        "share one grid (run nir preprocess on all first)")
    return volumes


def initial_template(volumes: Sequence[Volume], initial: str = "mean",
                     ids: Sequence[str] | None = None) -> torch.Tensor:
    """Iteration 0: the mean of the normalised images (``mean``), MNI152 resampled onto their
    grid (``mni152``), or the image of one subject (its ID in ``ids``)."""
    if initial == "mean":
        return torch.stack([normalised(v.data) for v in volumes]).mean(0)
    if initial == "mni152":
        from nir.preprocess.template import load_template

        mni = load_template("mni152")
        vox = np.linalg.inv(mni.affine) @ volumes[0].affine
        out = ndimage.affine_transform(mni.image, vox[:3, :3], vox[:3, 3],
                                       output_shape=volumes[0].shape, order=1)
        return torch.from_numpy(out.astype(np.float32))
    names = list(ids or [])
    if initial not in names:
        raise NirInputError(None, f"initial template {initial!r} is neither 'mean', 'mni152' "
                                  f"nor a subject ({', '.join(names)})")
    return normalised(volumes[names.index(initial)].data)


def _as_channels(field: torch.Tensor) -> torch.Tensor:
    return field.permute(3, 0, 1, 2).contiguous()


def displaced(field: torch.Tensor, by: torch.Tensor, grid: Grid) -> torch.Tensor:
    """``field`` (I, J, K, C) read at ``x + by(x)`` for every voxel x (trilinear, border
    values beyond the grid); ``by`` is a (I, J, K, 3) RAS-mm displacement."""
    coords = moving_coordinates(by, grid.affine, grid.shape, grid.affine)
    return sample(_as_channels(field), coords, padding_mode="border").permute(1, 2, 3, 0)


def invert_displacement(disp: torch.Tensor, grid: Grid) -> tuple[torch.Tensor, float]:
    """The displacement ``w`` of ``(id + disp)^-1`` by fixed-point iteration, and its residual
    ``max |w + disp(x + w)|`` in mm."""
    w = -disp
    residual = float("inf")
    for _ in range(INVERSE_ITERATIONS):
        new = -displaced(disp, w, grid)
        residual = float((new - w).norm(dim=-1).max())
        w = new
        if residual < INVERSE_TOLERANCE_MM:
            break
    return w, residual


def mean_displacement(warps: Sequence[str | Path], grid: Grid) -> torch.Tensor:
    """The voxelwise mean (I, J, K, 3) RAS mm of the subjects' warps to the template."""
    total = torch.zeros((*grid.shape, 3))
    for path in warps:
        disp, affine, _ = load_warp(path)
        if not same_grid(tuple(disp.shape[:3]), affine, grid.shape, grid.affine):
            raise NirInputError(path, "warp is not on the template grid")
        total += disp
    return total / len(warps)


def foreground(template: torch.Tensor) -> torch.Tensor:
    """The template's foreground: normalised intensity above FOREGROUND."""
    return normalised(template) > FOREGROUND


@dataclass
class Update:
    """The next template and what the shape update measured."""

    template: torch.Tensor
    mean_norm_mm: float  # mean over the template foreground of |ubar|
    max_norm_mm: float
    inverse_residual_mm: float


def shape_update(images: Sequence[Volume], warps: Sequence[str | Path],
                 template: Volume) -> Update:
    """The next template from the current one's grid, each subject's image and its warp to it."""
    grid = Grid.of(template)
    mean = mean_displacement(warps, grid)
    inverse, residual = invert_displacement(mean, grid)
    total = torch.zeros(grid.shape)
    for image, path in zip(images, warps, strict=True):
        disp, _, _ = load_warp(path)
        composed = inverse + displaced(disp, inverse, grid)
        coords = moving_coordinates(composed, grid.affine, image.shape, image.affine)
        total += warp_image(normalised(image.data), coords)
    norm = mean.norm(dim=-1)[foreground(template.data)]
    return Update(total / len(images), float(norm.mean()), float(norm.max()), residual)


def sharpness(template: torch.Tensor, grid: Grid) -> float:
    """Mean gradient magnitude (per mm) of the normalised template inside its foreground eroded
    by SHARPNESS_EROSION_MM: the brain's inner edges, not its outline. Blurrier is lower."""
    image = normalised(template).numpy()
    grads = np.gradient(image, *grid.spacing)
    magnitude = np.sqrt(sum(g**2 for g in grads))
    steps = max(1, round(SHARPNESS_EROSION_MM / float(grid.spacing.min())))
    inner = ndimage.binary_erosion(image > FOREGROUND, iterations=steps)
    return float(magnitude[inner].mean()) if inner.any() else float("nan")


def read_label_maps(paths: Sequence[str | Path], like: Volume) -> list[np.ndarray]:
    """Label maps on ``like``'s grid, as int32 arrays."""
    return [load_labels(p, like=like).data.numpy().astype(np.int32) for p in paths]


def scored_labels(maps: Sequence[np.ndarray]) -> list[int]:
    """The aseg structures present in any of ``maps``."""
    present = set().union(*(np.unique(m).tolist() for m in maps))
    return [label for label in ASEG_STRUCTURES if label in present]


def groupwise_dice(maps: Sequence[np.ndarray]) -> float:
    """Mean over subject pairs of the mean Dice over the aseg structures present."""
    labels = scored_labels(maps)
    scores = [mean_dice(dice_per_label(a, b, labels))
              for a, b in itertools.combinations(maps, 2)]
    return float(np.mean(scores))


def majority_labels(maps: Sequence[np.ndarray]) -> np.ndarray:
    """The most frequent label at every voxel (ties: the smaller ID), as int32."""
    labels = sorted(set().union(*(np.unique(m).tolist() for m in maps)))
    best = np.zeros(maps[0].shape, dtype=np.int32)
    best_count = np.full(maps[0].shape, -1, dtype=np.int16)
    for label in labels:
        count = np.zeros(maps[0].shape, dtype=np.int16)
        for m in maps:
            count += m == label
        better = count > best_count
        best[better], best_count[better] = label, count[better]
    return best
