"""The slices behind the paper's Fig 5: the warped moving image and det J while a field is fitted.

At every convergence record (:mod:`nir.engine.tracking`) one axial slice of the fixed grid, the
one through the centre of the fixed brain, is kept of the moving image warped with the
deformation fitted so far (trilinear, as ``PREFIX_warped``) and of its det J map (as
``PREFIX_jacobian``).  ``nir register`` writes them to ``PREFIX_convergence.npz``; ``nir paper``
draws them (the panels figure).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from nir.spatial.warp import warp_image


def axial_axis(affine: np.ndarray) -> int:
    """The voxel axis that points most nearly along world S (inferior to superior)."""
    columns = np.asarray(affine, dtype=np.float64)[:3, :3]
    return int(np.argmax(np.abs(columns[2]) / np.linalg.norm(columns, axis=0)))


def centre_index(mask: torch.Tensor, axis: int) -> int:
    """The middle of ``mask``'s extent along ``axis`` (of the whole axis if it is empty)."""
    other = tuple(d for d in range(3) if d != axis)
    hit = mask.any(dim=other[1]).any(dim=other[0]).nonzero()[:, 0]
    if len(hit) == 0:
        return mask.shape[axis] // 2
    return (int(hit[0]) + int(hit[-1])) // 2


class PanelSlices:
    """One axial slice of the warped moving image and of det J per convergence record.

    Args:
        fixed: the fixed image (I, J, K); its slice is kept once, for reference.
        moving: the moving image, sampled at the normalised moving coordinates of each record.
        brain: the fixed brain mask, whose centre picks the slice.
        affine: the fixed grid's affine (picks the axial axis).
    """

    def __init__(self, fixed: torch.Tensor, moving: torch.Tensor, brain: torch.Tensor,
                 affine: np.ndarray) -> None:
        self.axis = axial_axis(affine)
        self.index = centre_index(brain, self.axis)
        self.moving = moving
        self.fixed = self._cut(fixed).float().cpu().numpy()
        self.warped: list[np.ndarray] = []
        self.detj: list[np.ndarray] = []

    def _cut(self, volume: torch.Tensor) -> torch.Tensor:
        return volume.select(self.axis, self.index)

    def take(self, coords: torch.Tensor, detj: torch.Tensor) -> None:
        """Keep this record's slices, from the full-grid moving ``coords`` (I, J, K, 3) and
        det J map (I, J, K)."""
        self.warped.append(warp_image(self.moving, self._cut(coords)).cpu().numpy())
        self.detj.append(self._cut(detj).float().cpu().numpy())

    def save(self, path: str | Path, records: list[dict[str, Any]]) -> None:
        """Write the slices with their convergence ``records``' iteration, phase, mean Dice and
        % det J <= 0 as a compressed .npz, in place: ``path`` is a temporary file of
        :func:`nir.spatial.io.atomic_files`."""
        arrays = {key: np.asarray([r[key] for r in records])
                  for key in ("iteration", "phase", "mean_dice", "folding_percent")}
        arrays |= {"axis": np.asarray(self.axis), "index": np.asarray(self.index),
                   "fixed": self.fixed, "warped": np.stack(self.warped),
                   "detj": np.stack(self.detj)}
        with open(path, "wb") as handle:
            np.savez_compressed(handle, **arrays)
