"""``nir figures``: cohort figures from the tables, and per-pair visual QC panels."""

from __future__ import annotations

import argparse
from pathlib import Path

from nir.commands import label_table_option
from nir.errors import NirInputError

HELP = ("Draw dice_per_structure, dice_vs_folding and runtime (PNG, SVG and PDF) from the "
        "directory written by 'nir tables' (structures named by --label-table when given), "
        "and/or one QC panel per --qc (middle axial slice of fixed, moving, warped, "
        "|fixed - warped|, checkerboard, det J and the deformed grid).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``figures`` options."""
    parser.add_argument("--tables", type=Path, metavar="DIR",
                        help="directory written by 'nir tables' (reads DIR/pairs.csv)")
    parser.add_argument("--out-dir", type=Path, metavar="DIR",
                        help="directory for the cohort figures; required with --tables")
    label_table_option.add_argument(parser)
    parser.add_argument("--qc", nargs=6, action="append", default=[],
                        metavar=("FIXED", "MOVING", "WARPED", "JACOBIAN", "WARP", "OUT.png"),
                        help="write a QC panel OUT.png for one pair; WARP is the ITK displacement "
                             "field (PREFIX_warp.nii.gz), JACOBIAN the det J map or '-' to "
                             "compute it from WARP; repeat for several pairs")


def run(args: argparse.Namespace) -> None:
    """Draw the requested figures (plotting modules load here: every other verb stays fast)."""
    if args.tables is None and not args.qc:
        raise NirInputError("--tables/--qc", "give --tables DIR --out-dir DIR and/or --qc ...")
    table = label_table_option.load(args)
    if args.tables is not None:
        if args.out_dir is None:
            raise NirInputError("--out-dir", "required with --tables")
        from nir.evaluation.figures import write_figures

        write_figures(args.tables, args.out_dir, table)
    if args.qc:
        from nir.evaluation.qc_panel import qc_panel

        for fixed, moving, warped, jacobian, warp, out_png in args.qc:
            qc_panel(fixed, moving, warped, None if jacobian == "-" else jacobian, warp, out_png)
