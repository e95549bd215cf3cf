"""``nir apply``: resample an image or label map through a saved warp."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from nir.errors import NirInputError
from nir.spatial.displacement import load_warp
from nir.spatial.io import load_labels, load_volume, same_grid, save_volume
from nir.spatial.warp import moving_coordinates, warp_image, warp_labels

HELP = ("Apply a PREFIX_warp.nii.gz (ITK/ANTs displacement field) to any image or label map, "
        "resampling it onto the reference grid (like antsApplyTransforms).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``apply`` options."""
    parser.add_argument("--warp", required=True, type=Path, metavar="W", help="warp NIfTI")
    parser.add_argument("--moving", required=True, type=Path, metavar="X",
                        help="image or label map to resample")
    parser.add_argument("--reference", required=True, type=Path, metavar="F",
                        help="fixed image defining the output grid and header")
    parser.add_argument("--out", required=True, type=Path, metavar="Y", help="output NIfTI")
    parser.add_argument("--labels", action="store_true",
                        help="treat --moving as a label map (label-safe interpolation)")
    parser.add_argument("--interpolation", choices=("onehot", "nearest"), default="onehot",
                        help="label interpolation with --labels (default onehot)")


def run(args: argparse.Namespace) -> None:
    """Resample ``--moving`` through ``--warp`` onto ``--reference``."""
    disp, warp_affine, _ = load_warp(args.warp)
    reference = load_volume(args.reference)
    if not same_grid(disp.shape[:3], warp_affine, reference.shape, reference.affine):
        raise NirInputError(args.warp, f"warp grid {tuple(disp.shape[:3])} does not match the "
                                       f"reference grid {reference.shape} ({args.reference})")
    moving = load_labels(args.moving) if args.labels else load_volume(args.moving)
    coords = moving_coordinates(disp, warp_affine, moving.shape, moving.affine)
    if args.labels:
        out = warp_labels(moving.data, coords, args.interpolation).to(torch.int32)
        save_volume(out, reference.affine, args.out, header=reference.header, dtype=np.int32)
    else:
        save_volume(warp_image(moving.data, coords), reference.affine, args.out,
                    header=reference.header, dtype=np.float32)
