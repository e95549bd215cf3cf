"""Methods ranked on accuracy, regularity, time and peak memory, with the paired tests.

Each deformable method (the ``affine`` baseline is not ranked) gets, over pairs, the mean and
sd of its mean Dice (accuracy, higher is better), % det J <= 0 and SDlogJ (regularity: folding
first, SDlogJ breaking its ties), seconds (time) and peak memory (peak GPU memory for runs on
CUDA, as the paper measures it, else peak RSS: ``memory_measure`` says which; lower is better
for all but accuracy), a rank on each of these four aspects (1 = best, exact ties share the
best rank) and their mean; and the paired Wilcoxon test of its per-pair Dice against the
method with the best mean Dice, from :func:`nir.evaluation.tables.stats_table`
(Holm-adjusted over all method pairs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nir.evaluation.tables import (
    AFFINE,
    DISPLAY,
    _cell,
    _tex_escape,
    stats_table,
    summary_table,
)
from nir.markdown import markdown_table

# aspect -> (summary metrics, later ones breaking ties of earlier ones; True if higher is better)
ASPECTS: dict[str, tuple[tuple[str, ...], bool]] = {
    "accuracy": (("mean_dice",), True),
    "regularity": (("folding_percent", "sdlogj"), False),
    "time": (("seconds",), False),
    "memory": (("peak_memory_mb",), False),
}
METRICS = tuple(metric for metrics, _ in ASPECTS.values() for metric in metrics)


def memory_measure(devices: pd.Series) -> str:
    """What a method's ``peak_memory_mb`` measured, from its rows' ``device``: ``GPU`` (peak
    CUDA memory) when every run was on CUDA, ``CPU RSS`` when none was, else ``mixed``."""
    on_gpu = devices.astype(str).str.startswith("cuda")
    if on_gpu.all():
        return "GPU"
    return "CPU RSS" if not on_gpu.any() else "mixed"
TEST_COLUMNS = ("dice_diff_vs_best", "p_holm_vs_best")


def _versus_best(stats: pd.DataFrame, method: str, best: str) -> tuple[float, float]:
    """(median Dice difference method - best, Holm p) of the paired test of the two."""
    if method == best:
        return 0.0, float("nan")
    for a, b, sign in ((best, method, 1.0), (method, best, -1.0)):
        row = stats[(stats["method_a"] == a) & (stats["method_b"] == b)]
        if len(row):
            return sign * float(row["median_diff"].iloc[0]), float(row["p_holm"].iloc[0])
    return float("nan"), float("nan")


def aspect_rank(table: pd.DataFrame, metrics: tuple[str, ...], higher: bool) -> pd.Series:
    """Rank (1 = best) of each row on the means of ``metrics``, compared in order; rows equal
    on all of them share the best rank; a missing value ranks last."""
    sign = -1.0 if higher else 1.0
    keys = [tuple(sign * table[f"{m}_mean"].fillna(sign * np.inf)) for m in metrics]
    rows = list(zip(*keys, strict=True))
    return pd.Series([1 + sum(other < row for other in rows) for row in rows], index=table.index,
                     dtype=float)


def ranking_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """One row per deformable method of ``comparison`` (:func:`~nir.evaluation.tables.
    comparison_frame`), best mean rank first: the summary's mean and sd columns, a
    ``rank_<aspect>`` per :data:`ASPECTS`, ``mean_rank`` and the test against the best."""
    summary = summary_table(comparison)
    table = summary[summary["method"] != AFFINE].drop(columns="stage").reset_index(drop=True)
    devices = comparison.groupby("method")["device"]
    table["memory_measure"] = [memory_measure(devices.get_group(m)) for m in table["method"]]
    for aspect, (metrics, higher) in ASPECTS.items():
        table[f"rank_{aspect}"] = aspect_rank(table, metrics, higher)
    table["mean_rank"] = table[[f"rank_{a}" for a in ASPECTS]].mean(axis=1)
    if len(table):
        best = table.loc[table["mean_dice_mean"].idxmax(), "method"]
        stats = stats_table(comparison)
        tests = [_versus_best(stats, method, best) for method in table["method"]]
        table[list(TEST_COLUMNS)] = pd.DataFrame(tests, index=table.index)
    else:
        table = table.reindex(columns=[*table.columns, *TEST_COLUMNS])
    return table.sort_values(["mean_rank", "mean_dice_mean"], ascending=[True, False],
                             kind="stable").reset_index(drop=True)


def _test_cells(row: pd.Series) -> list[str]:
    diff, p = row["dice_diff_vs_best"], row["p_holm_vs_best"]
    return [format(diff, "+.3f") if np.isfinite(diff) else "n/a",
            format(p, ".3g") if np.isfinite(p) else "–"]


def _rank(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:g}"


HEADER = ["method", "n", *(DISPLAY[m][0] for m in METRICS), "memory measure",
          *(f"rank {a}" for a in ASPECTS), "mean rank", "Δ Dice vs best", "p (Holm)"]


def _cells(row: pd.Series, pm: str) -> list[str]:
    return [str(row["n_pairs"]), *(_cell(row, m, pm) for m in METRICS), row["memory_measure"],
            *(_rank(row[f"rank_{a}"]) for a in ASPECTS), f"{row['mean_rank']:.2f}",
            *_test_cells(row)]


def ranking_markdown(table: pd.DataFrame) -> str:
    """The ranking as a GitHub Markdown table."""
    rows = [[row["method"], *_cells(row, " ± ")] for _, row in table.iterrows()]
    return "\n".join(markdown_table(HEADER, rows)) + "\n"


def ranking_latex(table: pd.DataFrame) -> str:
    """The ranking as a booktabs LaTeX tabular (needs ``\\usepackage{booktabs}``)."""
    header = [_tex_escape(h) for h in HEADER]
    header[1], header[-2] = "$n$", r"$\Delta$ Dice vs best"
    lines = [r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule",
             " & ".join(header) + r" \\", r"\midrule"]
    for _, row in table.iterrows():
        cells = [_tex_escape(row["method"]), *_cells(row, r" $\pm$ ")]
        lines.append(" & ".join(cells).replace("–", "--") + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"
