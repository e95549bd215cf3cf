"""``--label-table FILE``, shared by the verbs that name or select structures (evaluate, tables,
figures)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nir.evaluation.label_table import LabelTable, read_label_table

HELP = ("structure names by label id, for label maps not numbered as FreeSurfer's aseg: a TSV "
        "with the columns id and name, or a FreeSurfer colour LUT (id name R G B A lines); the "
        "format is told from the content")


def add_argument(parser: argparse.ArgumentParser) -> None:
    """Register ``--label-table``."""
    parser.add_argument("--label-table", type=Path, metavar="FILE", help=HELP)


def load(args: argparse.Namespace) -> LabelTable | None:
    """The table named by ``--label-table``, or None."""
    return None if args.label_table is None else read_label_table(args.label_table)
