"""``nir register``: fit NIR to one pair and write ANTs-style outputs."""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import torch

from nir.device import resolve_device
from nir.engine.pair import register_files
from nir.engine.params import FIELDS, MODES, PRESETS, SAMPLERS, load_params
from nir.errors import NirInputError
from nir.evaluation.labels import parse_label_set
from nir.spatial.displacement import WARP_DTYPES

HELP = ("Register a moving image onto a fixed image with a neural field. Writes "
        "PREFIX_warped.nii.gz, PREFIX_warped_labels.nii.gz (with --moving-labels), "
        "PREFIX_warp.nii.gz (ITK/ANTs displacement, LPS mm), PREFIX_jacobian.nii.gz and "
        "PREFIX_summary.json. SIGTERM or SIGINT (a SLURM time limit, Ctrl-C) removes the "
        "temporary files and exits 1.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``register`` options."""
    add_pair_arguments(parser)
    parser.add_argument("--preset", choices=tuple(PRESETS),
                        help="speed/accuracy trade-off (default: default); --config and the "
                             "flags below override single parameters")
    parser.add_argument("--field", choices=FIELDS,
                        help="engine: lattice (default; the network is read on mm lattices, "
                             "fast) or continuous (the paper's NIR: the network at every "
                             "coordinate)")
    parser.add_argument("--mode", choices=MODES, help="field type (default velocity)")
    parser.add_argument("--sampler", choices=SAMPLERS, help="coordinate sampler (default hybrid)")
    parser.add_argument("--iterations", type=int,
                        help="iterations (the fine phase when --sampler hybrid)")
    parser.add_argument("--fixed-labels", type=Path, metavar="FL",
                        help="label map on the fixed grid: the summary's %% det J <= 0 is "
                             "counted in the brain, FL > 0, as 'nir evaluate' counts it "
                             "(default: fixed image > 0); with --moving-labels and "
                             "--track-every, the summary also records mean Dice and %% det J "
                             "<= 0 during the fit (convergence records)")
    parser.add_argument("--track-every", type=int, metavar="N",
                        help="record every N iterations (track_every; default 0: off)")
    parser.add_argument("--labels-set", default="aseg",
                        help="labels scored by the convergence records, as 'nir evaluate "
                             "--labels-set' (default aseg)")
    parser.add_argument("--inverse", action="store_true",
                        help="also write PREFIX_inverse_warp.nii.gz, integrating -v "
                             "(velocity mode; images on one grid)")
    parser.add_argument("--config", type=Path, metavar="params.yaml",
                        help="YAML of parameters (see nir.engine.params.RegistrationParams); "
                             "flags win over it")
    add_warp_dtype_argument(parser)
    add_runtime_arguments(parser)


def add_warp_dtype_argument(parser: argparse.ArgumentParser) -> None:
    """--warp-dtype, shared by the registration verbs."""
    parser.add_argument("--warp-dtype", choices=WARP_DTYPES, default="float32",
                        help="storage of the warp(s): float32 (default, exact, read by ANTs) "
                             "or int16 (half the size; NIfTI has no float16: 16-bit integers "
                             "times a step of max|d|/32767 mm, so at most 0.0005 mm off for "
                             "fields up to 32 mm; ITK before its fix of multi-component "
                             "scl_slope reads, e.g. antspyx 0.6.3, cannot read it)")


def add_pair_arguments(parser: argparse.ArgumentParser) -> None:
    """--fixed, --moving, --moving-labels and --out, shared by the registration verbs."""
    parser.add_argument("--fixed", required=True, type=Path, metavar="F", help="fixed image")
    parser.add_argument("--moving", required=True, type=Path, metavar="M", help="moving image")
    parser.add_argument("--moving-labels", type=Path, metavar="L",
                        help="label map on the moving grid, warped with the same field")
    parser.add_argument("--out", required=True, metavar="PREFIX", help="output prefix")


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """--device, --seed, --threads and --quiet, shared by compute-heavy verbs."""
    parser.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N (default auto)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: all)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def apply_runtime(args: argparse.Namespace) -> torch.device:
    """Set torch's thread count and resolve the device from parsed runtime arguments."""
    if args.threads is not None:
        if args.threads < 1:
            raise NirInputError("--threads", "must be >= 1")
        torch.set_num_threads(args.threads)
    return resolve_device(args.device)


def run(args: argparse.Namespace) -> None:
    """Run one registration."""
    device = apply_runtime(args)
    params = load_params(args.config, preset=args.preset, field=args.field, mode=args.mode,
                         sampler=args.sampler,
                         iterations=args.iterations, track_every=args.track_every)
    summary = register_files(args.fixed, args.moving, args.out, params,
                             moving_labels=args.moving_labels, seed=args.seed, device=device,
                             progress=not args.quiet, inverse=args.inverse,
                             fixed_labels=args.fixed_labels,
                             select_labels=partial(parse_label_set, args.labels_set),
                             warp_dtype=args.warp_dtype)
    print(f"nir register: {summary['seconds']:.1f} s on {summary['device']}, "
          f"peak RSS {summary['peak_rss_mb']:.0f} MB, folded "
          f"{summary['folding_percent']:.4f} % ({summary['folding_region']}) -> {args.out}_*")
