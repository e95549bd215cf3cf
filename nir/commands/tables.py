"""``nir tables``: cohort summary, per-structure Dice and paired tests from per-pair CSVs."""

from __future__ import annotations

import argparse
from pathlib import Path

from nir.commands import label_table_option
from nir.evaluation.tables import write_tables

HELP = ("Combine per-pair evaluation CSVs into pairs.csv, summary.{csv,md,tex} (mean ± sd per "
        "method and stage, DSC30), per_structure.csv (left/right-merged Dice) and stats.csv "
        "(paired Wilcoxon tests of mean Dice between methods). The affine baseline is the "
        "'before' stage of the evaluations, reported as method 'affine'. With --label-table "
        "the structures are named by the table (by label id).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``tables`` options."""
    parser.add_argument("--pairs", required=True, nargs="+", type=Path, metavar="PAIR.csv",
                        help="per-pair CSVs written by 'nir evaluate'")
    parser.add_argument("--out-dir", required=True, type=Path, metavar="DIR",
                        help="directory for the tables (created if missing)")
    label_table_option.add_argument(parser)


def run(args: argparse.Namespace) -> None:
    """Write every table."""
    write_tables(args.pairs, args.out_dir, label_table_option.load(args))
