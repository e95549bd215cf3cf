"""Small two-group cohorts of log-Jacobian maps for the group-statistics tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nir.spatial.io import save_volume
from nir.study.design import Design

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def two_groups(n_per_group: int, age: np.ndarray | None = None) -> Design:
    """Subjects s0, s1, ...: the first ``n_per_group`` in group a, the rest in b."""
    ids = tuple(f"s{i}" for i in range(2 * n_per_group))
    groups = tuple("a" if i < n_per_group else "b" for i in range(2 * n_per_group))
    return Design(ids, groups, ("a", "b"), {} if age is None else {"age": age})


def jacobian_cohort(tmp_path: Path, logj: np.ndarray, mask: np.ndarray
                    ) -> tuple[list[Path], Path]:
    """Write exp(``logj``) per subject and ``mask`` on the 2 mm grid; return their paths."""
    mask_path = save_volume(mask.astype(np.uint8), AFFINE, tmp_path / "mask.nii.gz")
    return [save_volume(np.exp(m), AFFINE, tmp_path / f"j{i}.nii.gz")
            for i, m in enumerate(logj)], mask_path
