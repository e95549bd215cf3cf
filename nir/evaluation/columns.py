"""The long-format evaluation CSV: written per pair by ``nir evaluate``, read by ``nir tables``.

One row per (stage, structure, metric): per-structure ``dice`` and ``hd95`` rows, and pair-level
rows (structure ``all``, label -1) for each of :data:`PAIR_METRICS`.
"""

from __future__ import annotations

COLUMNS = ("pair", "fixed", "moving", "method", "stage", "structure", "label", "metric", "value",
           "device")
PAIR_METRICS = ("mean_dice", "mean_hd95", "folding_percent", "sdlogj", "seconds", "peak_rss_mb",
                "peak_memory_mb")
# peak_memory_mb is what the paper measures: peak GPU memory when the run was on CUDA (the
# ``device`` column says so), else the CPU's peak RSS.
PAIR_LABEL = -1
PAIR_STRUCTURE = "all"
AFFINE = "affine"  # the affine-only baseline, a method name of its own in every table
