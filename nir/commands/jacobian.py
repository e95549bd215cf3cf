"""``nir jacobian``: Jacobian-determinant map of a saved warp."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from nir.spatial.displacement import load_warp
from nir.spatial.io import save_volume
from nir.spatial.jacobian import jacobian_determinant_map

HELP = "Write the Jacobian determinant of a PREFIX_warp.nii.gz (1 = volume kept, <= 0 folded)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``jacobian`` options."""
    parser.add_argument("--warp", required=True, type=Path, metavar="W", help="warp NIfTI")
    parser.add_argument("--out", required=True, type=Path, metavar="J", help="output NIfTI")


def run(args: argparse.Namespace) -> None:
    """Compute and write det J."""
    disp, affine, header = load_warp(args.warp)
    detj = jacobian_determinant_map(disp, affine)
    hdr = header.copy()
    hdr.set_intent("none")
    save_volume(detj, affine, args.out, header=hdr, dtype=np.float32)
