"""Tiny cohorts for workflow dry runs: each subject a bright cube, and a sample sheet with group
and covariate columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nir.spatial.io import save_volume

AFFINE = np.diag([4.0, 4.0, 4.0, 1.0])


def write_cube_cohort(folder: Path, rows: list[str], columns: str = "group\tage") -> Path:
    """Subjects ``sub-01`` … (a 12³ image at 4 mm with a cube, its labels) and their sheet
    ``folder/cohort.tsv``; ``rows`` hold each subject's tab-separated ``columns``."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"subject\tt1w\tlabels\t{columns}"]
    for i, extra in enumerate(rows, start=1):
        sid = f"sub-{i:02d}"
        image = np.zeros((12, 12, 12), np.float32)
        image[3:9, 3:9, 3:9] = 1.0
        save_volume(image, AFFINE, folder / f"{sid}_T1w.nii.gz")
        save_volume((image > 0).astype(np.int16) * 2, AFFINE, folder / f"{sid}_dseg.nii.gz")
        lines.append(f"{sid}\t{sid}_T1w.nii.gz\t{sid}_dseg.nii.gz\t{extra}")
    sheet = folder / "cohort.tsv"
    sheet.write_text("\n".join(lines) + "\n")
    return sheet
