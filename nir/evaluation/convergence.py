"""Convergence records of a run: gathered from the registration summaries, averaged over pairs.

``nir register`` with ``track_every: N`` writes, in ``PREFIX_summary.json`` under
``convergence.records``, the mean Dice and % det J <= 0 of the deformation every N iterations
(:mod:`nir.engine.tracking`).  Here they become one long table (one row per method, pair and
record) and one curve per method (mean and sd over the pairs at each recorded iteration).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from nir.errors import NirInputError
from nir.summary import read_json_object

RECORD_COLUMNS = ("iteration", "phase", "seconds", "mean_dice", "folding_percent")
COLUMNS = ("method", "pair", *RECORD_COLUMNS)


def summary_key(path: str | Path) -> tuple[str, str]:
    """(method, pair) of a summary laid out as the workflow writes it:
    ``.../METHOD/PAIR/PAIR_summary.json``."""
    path = Path(path)
    if path.name != f"{path.parent.name}_summary.json":
        raise NirInputError(path, "expected METHOD/PAIR/PAIR_summary.json (the workflow's layout)")
    return path.parent.parent.name, path.parent.name


def read_records(path: str | Path) -> pd.DataFrame:
    """The convergence records of one summary JSON (no rows when it has none), with its
    method and pair (:func:`summary_key`)."""
    method, pair = summary_key(path)
    summary = read_json_object(path)
    records = (summary.get("convergence") or {}).get("records", [])
    frame = pd.DataFrame(records, columns=list(RECORD_COLUMNS))
    missing = frame[list(RECORD_COLUMNS)].isna().all()
    if len(frame) and missing.any():
        raise NirInputError(path, f"convergence records lack {list(missing[missing].index)}")
    frame.insert(0, "pair", pair)
    frame.insert(0, "method", method)
    return frame


def read_convergence(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Every convergence record of the given summaries, one row each (:data:`COLUMNS`)."""
    frames = [read_records(path) for path in paths]
    frames = [frame for frame in frames if len(frame)]
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.concat(frames, ignore_index=True).sort_values(
        ["method", "pair", "iteration"], kind="stable").reset_index(drop=True)


def convergence_curves(records: pd.DataFrame) -> pd.DataFrame:
    """Per method and recorded iteration: number of pairs, mean seconds, and mean and sd
    (over pairs, ddof=1) of mean Dice and of % det J <= 0."""
    grouped = records.groupby(["method", "iteration"], sort=True)
    curves = grouped.agg(n_pairs=("pair", "nunique"), seconds=("seconds", "mean"),
                         dice_mean=("mean_dice", "mean"), dice_sd=("mean_dice", "std"),
                         folding_mean=("folding_percent", "mean"),
                         folding_sd=("folding_percent", "std"))
    return curves.reset_index()


LATE_FRACTION = 0.25  # "late" = the last quarter of a method's iterations


def flattening(curves: pd.DataFrame) -> pd.DataFrame:
    """How flat each method's curve ends: per method, its last recorded iteration, the mean
    Dice and % det J <= 0 there, and their change over the last :data:`LATE_FRACTION` of its
    iterations (from the record at or before 75 % of the last iteration).  A Dice gain of a
    few thousandths there means more iterations would change little."""
    rows = []
    for method, curve in curves.groupby("method", sort=True):
        curve = curve.sort_values("iteration")
        last = curve.iloc[-1]
        cut = (1.0 - LATE_FRACTION) * last["iteration"]
        late = curve[curve["iteration"] <= cut].iloc[-1]
        rows.append({"method": method, "last_iteration": int(last["iteration"]),
                     "from_iteration": int(late["iteration"]),
                     "dice": last["dice_mean"],
                     "late_dice_gain": last["dice_mean"] - late["dice_mean"],
                     "folding_percent": last["folding_mean"],
                     "late_folding_change": last["folding_mean"] - late["folding_mean"]})
    return pd.DataFrame(rows, columns=["method", "last_iteration", "from_iteration", "dice",
                                       "late_dice_gain", "folding_percent",
                                       "late_folding_change"])
