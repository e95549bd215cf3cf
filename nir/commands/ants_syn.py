"""``nir ants-syn``: the ANTs SyN baseline, writing the same files as ``nir register``."""

from __future__ import annotations

import argparse
from pathlib import Path

from nir.baselines.ants_syn import register_ants
from nir.commands.register import add_pair_arguments, add_warp_dtype_argument
from nir.study.methods import DEFAULT_TRANSFORM, TRANSFORMS

HELP = ("Register a moving image onto a fixed image with ANTs SyN (antspyx, run in its own "
        "environment from `nir ants-env`). Writes the same PREFIX_* files as `nir register`.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``ants-syn`` options."""
    add_pair_arguments(parser)
    parser.add_argument("--ants-python", required=True, type=Path, metavar="PY",
                        help="Python of the antspyx environment (VENV/bin/python)")
    parser.add_argument("--transform", default=DEFAULT_TRANSFORM, choices=TRANSFORMS,
                        help=f"antspyx type_of_transform (default {DEFAULT_TRANSFORM}: "
                             "antsRegistrationSyN.sh's SyN stage, CC radius 4, 100x70x50x20)")
    parser.add_argument("--seed", type=int, default=0, help="ANTs random seed (default 0)")
    parser.add_argument("--threads", type=int, help="ITK threads (default: all)")
    parser.add_argument("--fixed-labels", type=Path, metavar="FL",
                        help="label map on the fixed grid: the summary's %% det J <= 0 is "
                             "counted where FL > 0, as 'nir evaluate' counts it (default: "
                             "fixed image > 0)")
    add_warp_dtype_argument(parser)


def run(args: argparse.Namespace) -> None:
    """Run one ANTs registration."""
    # SIGTERM (an error inside nir.cli.main) kills ANTs and removes the .ants-* folder
    summary = register_ants(args.fixed, args.moving, args.out, args.ants_python,
                            transform=args.transform, moving_labels=args.moving_labels,
                            seed=args.seed, threads=args.threads,
                            fixed_labels=args.fixed_labels, warp_dtype=args.warp_dtype)
    print(f"nir ants-syn: {summary['seconds']:.1f} s, peak RSS {summary['peak_rss_mb']:.0f} MB, "
          f"folded {summary['folding_percent']:.4f} % ({summary['folding_region']}) "
          f"-> {args.out}_*")
