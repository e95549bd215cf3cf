"""Time the cohort aggregation (nir tables, then nir figures) over 9,900 pairs of metric files.

Writes one synthetic per-pair evaluation CSV per pair and method, laid out exactly as
``nir evaluate`` writes them (the aseg structures, Dice and HD95 before and after, and the
pair-level rows), for a 100-subject all-pairs cohort.  Then it times, in the same run:

* the references: reading every file's bytes, and reading every file with ``pandas.read_csv``;
* ``write_tables`` (pairs.csv, summary, per-structure Dice, paired tests) and
  ``write_figures`` (the three cohort figures in every format), as the workflow runs them.

It prints the seconds of each step and the aggregation's time as a multiple of each reference
(so the figure carries over to another machine), and exits 1 if the aggregation takes over
``--budget`` seconds (default 60, the target for 9,900 pairs).

Usage: python benchmarks/aggregate_metrics.py [--pairs 9900] [--methods 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from nir.evaluation.columns import COLUMNS, PAIR_LABEL, PAIR_STRUCTURE
from nir.evaluation.figures import write_figures
from nir.evaluation.labels import DEFAULT_STRUCTURES, label_name
from nir.evaluation.tables import write_tables


def pair_csv(pair: str, method: str, rng: np.random.Generator) -> str:
    """One pair's evaluation CSV text with plausible random values."""
    fixed, moving = pair.split("_to_")[1], pair.split("_to_")[0]
    head = f"{pair},{fixed},{moving},{method}"
    lines = [",".join(COLUMNS)]
    for stage, shift in (("before", 0.0), ("after", 0.2)):
        dice = np.clip(rng.normal(0.55 + shift, 0.1, len(DEFAULT_STRUCTURES)), 0, 1)
        hd95 = rng.gamma(4.0, 1.0 - shift, len(DEFAULT_STRUCTURES))
        for label, d, h in zip(DEFAULT_STRUCTURES, dice, hd95, strict=True):
            lines.append(f"{head},{stage},{label_name(label)},{label},dice,{d:.6g},cpu")
            lines.append(f"{head},{stage},{label_name(label)},{label},hd95,{h:.6g},cpu")
        pair_rows = {"mean_dice": dice.mean(), "mean_hd95": hd95.mean(),
                     "folding_percent": rng.exponential(0.01) if shift else 0.0,
                     "sdlogj": rng.normal(0.1, 0.01) if shift else 0.0}
        if shift:
            pair_rows |= {"seconds": rng.normal(60, 5), "peak_rss_mb": rng.normal(1300, 50)}
        for metric, value in pair_rows.items():
            lines.append(f"{head},{stage},{PAIR_STRUCTURE},{PAIR_LABEL},{metric},{value:.6g},cpu")
    return "\n".join(lines) + "\n"


def make_cohort(folder: Path, n_pairs: int, n_methods: int, seed: int = 0) -> list[Path]:
    """``n_pairs`` ordered pairs of a cohort (all pairs of enough subjects) per method."""
    n_subjects = int(np.ceil((1 + np.sqrt(1 + 4 * n_pairs)) / 2))
    subjects = [f"sub-{i:03d}" for i in range(1, n_subjects + 1)]
    pairs = [f"{m}_to_{f}" for f in subjects for m in subjects if m != f][:n_pairs]
    rng = np.random.default_rng(seed)
    paths = []
    for method in [f"nir-{k}" for k in range(1, n_methods + 1)]:
        (folder / method).mkdir(parents=True, exist_ok=True)
        for pair in pairs:
            path = folder / method / f"{pair}.csv"
            path.write_text(pair_csv(pair, method, rng))
            paths.append(path)
    return paths


def timed(step: Callable[[], object]) -> float:
    """Seconds that ``step()`` takes."""
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def read_bytes(paths: list[Path]) -> int:
    """Read every file (the I/O floor)."""
    return sum(len(path.read_bytes()) for path in paths)


def read_with_pandas(paths: list[Path]) -> pd.DataFrame:
    """Read every file with pandas and concatenate (the plainest way to load them)."""
    return pd.concat([pd.read_csv(path) for path in paths], ignore_index=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=9900, help="pairs per method (9900)")
    parser.add_argument("--methods", type=int, default=1, help="methods (1)")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds allowed (60)")
    parser.add_argument("--out", type=Path, help="keep the files here (default: a temp dir)")
    args = parser.parse_args()
    folder = args.out or Path(tempfile.mkdtemp(prefix="nir-aggregate-"))
    try:
        start = time.perf_counter()
        paths = make_cohort(folder / "metrics", args.pairs, args.methods)
        print(f"{len(paths)} metric files ({sum(p.stat().st_size for p in paths) / 1e6:.0f} MB)"
              f" written in {time.perf_counter() - start:.1f} s")
        reference_bytes = timed(lambda: read_bytes(paths))
        reference_pandas = timed(lambda: read_with_pandas(paths))
        tables = timed(lambda: write_tables(paths, folder / "tables"))
        figures = timed(lambda: write_figures(folder / "tables", folder / "figures"))
    finally:
        if args.out is None:
            shutil.rmtree(folder, ignore_errors=True)
    total = tables + figures
    rows = [("read the files' bytes (reference)", reference_bytes),
            ("pandas.read_csv of every file (reference)", reference_pandas),
            ("nir tables", tables), ("nir figures", figures), ("aggregation (tables + figures)",
                                                              total)]
    for name, seconds in rows:
        print(f"{name:<45} {seconds:8.2f} s")
    print(f"aggregation = {total / reference_pandas:.2f} x the pandas read, "
          f"{total / reference_bytes:.1f} x the byte read; budget {args.budget:.0f} s: "
          f"{'met' if total <= args.budget else 'MISSED'}")
    return 0 if total <= args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
