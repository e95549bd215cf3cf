"""Quality control of a study template's registrations: how well the last round brought each
subject onto the final template, which subjects stand out, and a panel of each.

Two numbers per subject, on the template grid, inside the template's labelled region (its
brain mask; the template's foreground when there are no labels):

- ``dice``: the mean Dice of the subject's warped labels to the template's (majority-vote)
  labels over the aseg structures present in the template's labels;
- ``ncc``: the normalised cross-correlation (Pearson's r) of the subject's warped image with the
  template.

A subject is flagged as an **outlier** when a measure lies more than :data:`OUTLIER_Z` robust
standard deviations below the cohort's median: ``z = (x - median) / s`` with ``s`` = 1.4826 x the
median absolute deviation (the standard deviation for normal data), floored at
:data:`MIN_SPREAD` so that near-identical registrations do not flag a difference of a few
thousandths.  Only low values are flagged: a registration better than the rest is no problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nir.evaluation.outline_panel import outline_panel
from nir.markdown import markdown_table
from nir.spatial.io import Volume, check_grid, load_labels, load_volume, write_csv, write_text
from nir.spatial.overlap import dice_per_label, mean_dice
from nir.study.template import foreground, scored_labels

MEASURES = ("dice", "ncc")
OUTLIER_Z = 3.0
MAD_TO_SD = 1.4826
MIN_SPREAD = 0.01  # in Dice and NCC units: the smallest robust standard deviation used
RULE = (f"outlier: Dice or NCC more than {OUTLIER_Z:g} robust SD below the cohort median "
        f"(robust SD = {MAD_TO_SD} x MAD, at least {MIN_SPREAD:g})")
TEMPLATE = "template"


@dataclass(frozen=True)
class Reference:
    """The final template, its labels (or None), the region measured and the structures
    scored."""

    volume: Volume
    labels: np.ndarray | None
    region: np.ndarray
    scored: list[int]

    @classmethod
    def read(cls, template: str | Path, labels: str | Path | None = None) -> Reference:
        volume = load_volume(template)
        if labels is None:
            return cls(volume, None, foreground(volume.data).numpy(), [])
        label_map = load_labels(labels, like=volume).data.numpy().astype(np.int32)
        return cls(volume, label_map, label_map > 0, scored_labels([label_map]))

    def on_grid(self, path: str | Path, labels: bool = False) -> np.ndarray:
        """A subject's warped image (or label map) as an array; it must lie on the template's
        grid."""
        if labels:
            return load_labels(path, like=self.volume).data.numpy().astype(np.int32)
        volume = load_volume(path)
        check_grid(path, volume.shape, volume.affine, self.volume, TEMPLATE)
        return volume.data.numpy()


def ncc(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    """Pearson's correlation of ``a`` and ``b`` over the voxels of ``region``."""
    x = a[region].astype(np.float64)
    y = b[region].astype(np.float64)
    x -= x.mean()
    y -= y.mean()
    denominator = np.sqrt((x @ x) * (y @ y))
    return float(x @ y / denominator) if denominator > 0 else float("nan")


def subject_measures(reference: Reference, warped: str | Path,
                     warped_labels: str | Path | None = None) -> dict[str, float]:
    """Dice (NaN without labels) and NCC of one subject's last-round registration."""
    image = reference.on_grid(warped)
    dice = float("nan")
    if reference.labels is not None and warped_labels is not None:
        scores = dice_per_label(reference.on_grid(warped_labels, labels=True), reference.labels,
                                reference.scored)
        dice = mean_dice(scores)
    return {"dice": dice, "ncc": ncc(reference.volume.data.numpy(), image, reference.region)}


def robust_z(values: Sequence[float]) -> np.ndarray:
    """``(x - median) / max(1.4826 MAD, MIN_SPREAD)`` of the finite values (NaN elsewhere)."""
    x = np.asarray(values, dtype=float)
    finite = x[np.isfinite(x)]
    if not finite.size:
        return np.full(x.shape, np.nan)
    median = np.median(finite)
    spread = max(MAD_TO_SD * float(np.median(np.abs(finite - median))), MIN_SPREAD)
    return (x - median) / spread


def flag_outliers(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (one row per subject, the :data:`MEASURES` columns) with each measure's robust
    z (``dice_z``, ``ncc_z``), ``outlier`` and ``flagged_by`` (the measures that flag it)."""
    out = table.copy()
    low = {}
    for measure in MEASURES:
        out[f"{measure}_z"] = robust_z(out[measure])
        low[measure] = (out[f"{measure}_z"] < -OUTLIER_Z).to_numpy()
    out["flagged_by"] = [", ".join(m for m in MEASURES if low[m][i]) for i in range(len(out))]
    out["outlier"] = out["flagged_by"] != ""
    return out


def qc_table(reference: Reference, ids: Sequence[str], warped: Sequence[str | Path],
             warped_labels: Sequence[str | Path] | None = None) -> pd.DataFrame:
    """One row per subject (cohort order): its measures, robust z and outlier flag."""
    labels = warped_labels or [None] * len(ids)
    rows = [{"subject": sid, **subject_measures(reference, image, label)}
            for sid, image, label in zip(ids, warped, labels, strict=True)]
    return flag_outliers(pd.DataFrame(rows, columns=["subject", *MEASURES]))


def qc_markdown(table: pd.DataFrame, excluded: Mapping[str, str] | None = None) -> str:
    """The QC table as Markdown, with the outlier rule and the subjects the config excluded."""
    header = ["subject", "Dice", "Dice z", "NCC", "NCC z", "outlier"]
    rows = [[row.subject, _number(row.dice), _number(row.dice_z, "+.1f"), _number(row.ncc),
             _number(row.ncc_z, "+.1f"), f"**yes** ({row.flagged_by})" if row.outlier else ""]
            for row in table.itertuples(index=False)]
    lines = ["Registration of each subject onto the final template (last round); " + RULE + ".",
             "", *markdown_table(header, rows)]
    if excluded:
        lines += ["", "Excluded by the config (`exclude`), not part of the template or the "
                      "statistics:", ""]
        lines += [f"- {sid}: {reason}" for sid, reason in excluded.items()]
    return "\n".join(lines) + "\n"


def _number(value: float, spec: str = ".3f") -> str:
    return "–" if pd.isna(value) else format(value, spec)


def write_template_qc(template: str | Path, template_labels: str | Path | None,
                      ids: Sequence[str], warped: Sequence[str | Path],
                      warped_labels: Sequence[str | Path] | None, csv_out: str | Path,
                      markdown_out: str | Path, panels: Sequence[str | Path],
                      excluded: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Write the QC table (CSV and Markdown) and one panel per subject (``panels``, in the
    order of ``ids``): the template and the subject's warped image, the template's label
    outlines on both (the template's foreground outline without labels)."""
    reference = Reference.read(template, template_labels)
    table = qc_table(reference, ids, warped, warped_labels)
    write_csv(table, csv_out)
    write_text(qc_markdown(table, excluded), markdown_out)
    outlines = reference.labels if reference.labels is not None else \
        reference.region.astype(np.int32)
    template_image = reference.volume.data.numpy()
    for row, image, panel in zip(table.itertuples(index=False), warped, panels, strict=True):
        title = f"{row.subject} on the final template: Dice {_number(row.dice)}, NCC " \
                f"{_number(row.ncc)}" + (f"  OUTLIER ({row.flagged_by})" if row.outlier else "")
        outline_panel(template_image, reference.on_grid(image), outlines,
                      reference.volume.affine, panel, (TEMPLATE, f"{row.subject} warped"),
                      title, warn=bool(row.outlier))
    return table
