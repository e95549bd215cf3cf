"""Cohort tables from the per-pair evaluation CSVs: summary, per-structure Dice and paired tests.

The comparison always includes the ``affine`` baseline: the ``before`` stage of any method (or an
explicit ``affine`` method), deduplicated per pair.  Every other method contributes its ``after``
stage.  Summary statistics are over pairs; the standard deviation is the sample one (ddof=1).
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from nir.errors import NirInputError
from nir.evaluation.columns import AFFINE, COLUMNS, PAIR_LABEL, PAIR_METRICS
from nir.evaluation.label_table import LabelTable
from nir.evaluation.labels import label_name, merged_name
from nir.markdown import markdown_table
from nir.spatial.io import write_csv, write_text

DSC30_FRACTION = 0.3
TABLES = ("pairs.csv", "summary.csv", "summary.md", "summary.tex", "per_structure.csv",
          "stats.csv")  # what write_tables writes
KEY = ["pair", "structure", "label", "metric"]
HEADER = ",".join(COLUMNS)
TEXT_COLUMNS = ("pair", "fixed", "moving", "method", "device")

# (header, format) of each summary column in the Markdown/LaTeX tables.
DISPLAY = {
    "mean_dice": ("Dice", ".3f"),
    "dsc30": ("DSC30", ".3f"),
    "mean_hd95": ("HD95 (mm)", ".2f"),
    "folding_percent": ("folding (%)", ".3f"),
    "sdlogj": ("SDlogJ", ".3f"),
    "seconds": ("time (s)", ".1f"),
    "peak_rss_mb": ("peak RSS (MB)", ".0f"),
    "peak_memory_mb": ("peak memory (MB)", ".0f"),
}


def _read_text(path: str | Path) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError as exc:
        raise NirInputError(path, "file does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise NirInputError(path, f"unreadable as CSV ({exc})") from exc


def _parse(text: str, path: str | Path) -> pd.DataFrame:
    """Evaluation rows of CSV ``text`` in :data:`COLUMNS` order; ``path`` names it in errors."""
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=dict.fromkeys(TEXT_COLUMNS, str),
                            keep_default_na=False, na_values=[""])
    except (OSError, ValueError) as exc:
        raise NirInputError(path, f"unreadable as CSV ({exc})") from exc
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise NirInputError(path, f"missing columns {missing}")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    frame[["fixed", "moving", "device"]] = frame[["fixed", "moving", "device"]].fillna("")
    return frame[list(COLUMNS)]


def name_structures(frame: pd.DataFrame, table: LabelTable | None) -> pd.DataFrame:
    """``frame`` with each per-structure row's name taken from ``table`` by its label id (as
    ``nir evaluate --label-table`` names it); unchanged without a table."""
    if table is None:
        return frame
    rows = frame["label"] != PAIR_LABEL
    labels = frame.loc[rows, "label"].astype(int)
    names = {label: label_name(label, table) for label in labels.unique()}
    frame = frame.copy()
    frame.loc[rows, "structure"] = labels.map(names)
    return frame


def _load_pairs(paths: Sequence[str | Path],
                table: LabelTable | None = None) -> tuple[pd.DataFrame, str | None]:
    """:func:`read_pairs`, and the CSV text the frame was parsed from when it is exactly that
    text (no duplicate dropped, no structure renamed), so that ``pairs.csv`` need not be
    formatted again."""
    if not paths:
        raise NirInputError("--pairs", "no evaluation CSV given")
    texts = [_read_text(path) for path in paths]
    heads, bodies = zip(*(text.partition("\n")[::2] for text in texts), strict=True)
    frame, joined = None, None
    if all(head == HEADER for head in heads):
        joined = HEADER + "\n" + "".join(b if b.endswith("\n") or not b else b + "\n"
                                         for b in bodies)
        try:
            frame = _parse(joined, f"{len(paths)} evaluation CSVs")
        except NirInputError:
            joined = None  # parse them one by one below, to name the faulty file
    if frame is None:
        frame = pd.concat([_parse(text, path) for text, path in zip(texts, paths, strict=True)],
                          ignore_index=True)
    named = name_structures(frame, table)
    if not named["structure"].equals(frame["structure"]):
        joined = None
    duplicated = named.duplicated(subset=["method", "stage", *KEY], keep="first")
    if not duplicated.any():
        return named, None if joined is None or "\r" in joined else joined
    return named[~duplicated].reset_index(drop=True), None


def read_pairs(paths: Sequence[str | Path], table: LabelTable | None = None) -> pd.DataFrame:
    """Concatenate per-pair evaluation CSVs, checking their columns; exact duplicates dropped;
    structures named by ``table`` (:func:`name_structures`) when one is given.

    When every file has exactly the columns ``nir evaluate`` writes, in its order (the usual
    case), the files are joined as text and parsed once, so a cohort's thousands of files load
    in seconds; otherwise, or if the joined text does not parse, each file is parsed alone, so
    that an error names its file.
    """
    return _load_pairs(paths, table)[0]


def method_order(methods: Sequence[str]) -> list[str]:
    """``affine`` first, then the other methods alphabetically."""
    rest = sorted({m for m in methods if m != AFFINE})
    return ([AFFINE] if AFFINE in methods else []) + rest


def comparison_frame(pairs: pd.DataFrame) -> pd.DataFrame:
    """Long rows to compare: each method's ``after`` stage plus the ``affine`` baseline."""
    explicit = pairs[(pairs["method"] == AFFINE) & (pairs["stage"] == "after")]
    before = pairs[pairs["stage"] == "before"].sort_values("method", kind="stable")
    baseline = pd.concat([explicit, before]).drop_duplicates(subset=KEY, keep="first")
    baseline = baseline.assign(method=AFFINE, stage="before")
    methods = pairs[(pairs["method"] != AFFINE) & (pairs["stage"] == "after")]
    return pd.concat([baseline, methods], ignore_index=True)


def pair_metrics(comparison: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, stage, pair) with the pair-level metrics as columns."""
    rows = comparison[comparison["metric"].isin(PAIR_METRICS)]
    wide = rows.groupby(["method", "stage", "pair", "metric"])["value"].first().unstack("metric")
    return wide.reindex(columns=list(PAIR_METRICS)).reset_index().rename_axis(columns=None)


def dsc30(values: Sequence[float]) -> float:
    """Mean of the worst 30 % of values (ceil(0.3 n) lowest, at least one); NaN if none."""
    arr = np.sort(np.asarray(values, dtype=float)[np.isfinite(np.asarray(values, dtype=float))])
    if not arr.size:
        return float("nan")
    return float(arr[: max(1, math.ceil(DSC30_FRACTION * arr.size))].mean())


def summary_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """Per method and stage: n_pairs, mean and sd of each pair metric, and DSC30."""
    wide = pair_metrics(comparison)
    rows = []
    for method in method_order(wide["method"].unique().tolist()):
        for stage, group in wide[wide["method"] == method].groupby("stage", sort=True):
            row = {"method": method, "stage": stage, "n_pairs": int(group["pair"].nunique())}
            for metric in PAIR_METRICS:
                row[f"{metric}_mean"] = group[metric].mean()
                row[f"{metric}_sd"] = group[metric].std(ddof=1)
            row["dsc30"] = dsc30(group["mean_dice"].tolist())
            rows.append(row)
    return pd.DataFrame(rows)


def structure_dice(comparison: pd.DataFrame) -> pd.DataFrame:
    """Left/right-merged Dice per (method, stage, pair, structure): the mean of both sides."""
    dice = comparison[comparison["metric"] == "dice"].copy()
    names = dice["structure"].unique()  # a few dozen names over up to millions of rows
    dice["structure"] = dice["structure"].map(dict(zip(names, map(merged_name, names),
                                                       strict=True)))
    merged = dice.groupby(["method", "stage", "pair", "structure"], sort=False).agg(
        dice=("value", "mean"), first_label=("label", "min")).reset_index()
    return merged.sort_values(["first_label", "structure"], kind="stable").drop(
        columns="first_label").reset_index(drop=True)


def per_structure_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over pairs of the merged per-structure Dice, per method."""
    merged = structure_dice(comparison)
    table = merged.groupby(["method", "stage", "structure"], sort=False).agg(
        mean_dice=("dice", "mean"), sd_dice=("dice", "std"),
        n_pairs=("dice", "count")).reset_index()
    order = {m: i for i, m in enumerate(method_order(table["method"].unique().tolist()))}
    return table.sort_values("method", key=lambda s: s.map(order), kind="stable").reset_index(
        drop=True)


def rank_biserial(differences: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation (R+ - R-)/(R+ + R-) over the non-zero differences."""
    d = differences[differences != 0]
    if not d.size:
        return float("nan")
    ranks = stats.rankdata(np.abs(d))
    return float((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())


def _paired_test(a: np.ndarray, b: np.ndarray) -> tuple[float, float, str]:
    """(statistic, p, note) of the Wilcoxon signed-rank test of b - a."""
    d = b - a
    if d.size < 2:
        return float("nan"), float("nan"), "fewer than 2 paired observations"
    if not np.any(d != 0):
        return float("nan"), float("nan"), "all differences are zero"
    result = stats.wilcoxon(b, a, zero_method="wilcox")
    return float(result.statistic), float(result.pvalue), ""


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (NaN entries are left out and stay NaN)."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    order = valid[np.argsort(p[valid])]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (order.size - rank) * p[idx]))
        adjusted[idx] = running
    return adjusted.tolist()


def stats_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """Paired Wilcoxon signed-rank tests of per-pair mean Dice between every two methods.

    ``median_diff`` and ``rank_biserial`` are positive when ``method_b`` scores higher.
    """
    wide = pair_metrics(comparison).pivot(index="pair", columns="method", values="mean_dice")
    rows = []
    for a, b in itertools.combinations(method_order(list(wide.columns)), 2):
        both = wide[[a, b]].dropna()
        x, y = both[a].to_numpy(float), both[b].to_numpy(float)
        statistic, p, note = _paired_test(x, y)
        rows.append({"method_a": a, "method_b": b, "metric": "mean_dice", "n": len(both),
                     "median_diff": float(np.median(y - x)) if len(both) else float("nan"),
                     "statistic": statistic, "p_value": p,
                     "rank_biserial": rank_biserial(y - x) if len(both) else float("nan"),
                     "note": note})
    table = pd.DataFrame(rows, columns=["method_a", "method_b", "metric", "n", "median_diff",
                                        "statistic", "p_value", "rank_biserial", "note"])
    table.insert(7, "p_holm", holm(table["p_value"].tolist()) if len(table) else [])
    return table


def _cell(summary_row: pd.Series, metric: str, pm: str) -> str:
    fmt = DISPLAY[metric][1]
    if metric == "dsc30":
        value = summary_row["dsc30"]
        return "n/a" if not np.isfinite(value) else format(value, fmt)
    mean, sd = summary_row[f"{metric}_mean"], summary_row[f"{metric}_sd"]
    if not np.isfinite(mean):
        return "n/a"
    return format(mean, fmt) + ("" if not np.isfinite(sd) else f"{pm}{format(sd, fmt)}")


def summary_markdown(summary: pd.DataFrame) -> str:
    """The summary as a GitHub Markdown table (mean ± sd over pairs)."""
    header = ["method", "stage", "n", *(DISPLAY[m][0] for m in DISPLAY)]
    rows = [[row["method"], row["stage"], str(row["n_pairs"]),
             *(_cell(row, m, " ± ") for m in DISPLAY)] for _, row in summary.iterrows()]
    return "\n".join(markdown_table(header, rows)) + "\n"


def _tex_escape(text: str) -> str:
    for char in "\\&%$#_{}":
        text = text.replace(char, "\\" + char)
    return text


def summary_latex(summary: pd.DataFrame) -> str:
    """The summary as a booktabs LaTeX tabular (mean $\\pm$ sd over pairs)."""
    header = ["method", "stage", "$n$", *(_tex_escape(DISPLAY[m][0]) for m in DISPLAY)]
    lines = [r"\begin{tabular}{ll" + "r" * (len(header) - 2) + "}", r"\toprule",
             " & ".join(header) + r" \\", r"\midrule"]
    for _, row in summary.iterrows():
        cells = [_tex_escape(row["method"]), _tex_escape(row["stage"]), str(row["n_pairs"])]
        cells += [_cell(row, m, r" $\pm$ ") for m in DISPLAY]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_tables(paths: Sequence[str | Path], out_dir: str | Path,
                 table: LabelTable | None = None) -> dict[str, Path]:
    """Write pairs.csv, summary.{csv,md,tex}, per_structure.csv and stats.csv into ``out_dir``
    (structure names from ``table`` when given)."""
    out_dir = Path(out_dir)
    pairs, pairs_text = _load_pairs(paths, table)
    comparison = comparison_frame(pairs)
    if comparison.empty:
        raise NirInputError("--pairs", "no 'before' or 'after' rows in the evaluation CSVs")
    summary = summary_table(comparison)
    outputs = {name: out_dir / name for name in TABLES}
    if pairs_text is None:
        write_csv(pairs, outputs["pairs.csv"])
    else:
        write_text(pairs_text, outputs["pairs.csv"])
    write_csv(summary, outputs["summary.csv"])
    write_text(summary_markdown(summary), outputs["summary.md"])
    write_text(summary_latex(summary), outputs["summary.tex"])
    write_csv(per_structure_table(comparison), outputs["per_structure.csv"])
    write_csv(stats_table(comparison), outputs["stats.csv"])
    return outputs
