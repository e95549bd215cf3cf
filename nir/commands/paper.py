"""``nir paper``: convergence curves, the ranking table and chart of a run (the paper outputs)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("Write convergence.csv (every convergence record), the convergence figure (mean Dice and "
        "%% det J <= 0 against iteration and seconds, per method), ranking.{csv,md,tex} and the "
        "ranking chart (rank on accuracy, regularity, time and peak memory, with the paired "
        "Wilcoxon test against the most accurate method), convergence_end.csv and the panels "
        "figure (the paper's Fig 5) from the directory written by 'nir tables', the "
        "registration summaries and their convergence slices.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``paper`` options."""
    parser.add_argument("--tables", required=True, type=Path, metavar="DIR",
                        help="directory written by 'nir tables' (reads DIR/pairs.csv)")
    parser.add_argument("--summaries", nargs="*", default=[], type=Path,
                        metavar="METHOD/PAIR/PAIR_summary.json",
                        help="registration summaries, laid out as the workflow writes them "
                             "(method and pair are read from the path); those with "
                             "convergence records ('nir register --track-every') give curves")
    parser.add_argument("--panels", nargs="*", default=[], type=Path,
                        metavar="METHOD/PAIR/PAIR_convergence.npz",
                        help="slices written by 'nir register --track-every' beside the "
                             "summaries: the panels figure (the paper's Fig 5) shows a slice of "
                             "the warped moving image and of det J at every record")
    parser.add_argument("--panel-pair", metavar="PAIR",
                        help="the pair the panels figure shows (default: the first)")
    parser.add_argument("--out-dir", required=True, type=Path, metavar="DIR",
                        help="directory for the tables and figures (created if missing)")


def run(args: argparse.Namespace) -> None:
    """Write the paper tables and figures (plotting modules load here)."""
    from nir.evaluation.paper import write_paper

    write_paper(args.tables, args.summaries, args.out_dir, args.panels, args.panel_pair)
