"""``nir preprocess``: skull-strip, normalise and affinely align a raw T1w to the template grid."""

from __future__ import annotations

import argparse

from nir.preprocess.brain_extraction import METHODS
from nir.preprocess.pipeline import preprocess_subject
from nir.preprocess.template import DEFAULT_GRID_SHAPE, TEMPLATES

HELP = ("Preprocess a raw T1w: brain mask, bias correction, [0,1] intensities and affine "
        "alignment into a common template grid")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``nir preprocess``."""
    parser.add_argument("--t1w", required=True, help="raw T1w NIfTI/MGH image")
    parser.add_argument("--out", required=True, help="output prefix (PREFIX_preproc.nii.gz, ...)")
    parser.add_argument("--labels", help="label map on the T1w grid, resampled label-safely")
    parser.add_argument("--brainmask", metavar="FILE",
                        help="brain mask in the T1w's space (nonzero = brain); replaces brain "
                             "extraction, so --skull-strip is unused")
    parser.add_argument("--template", default="mni152", choices=sorted(TEMPLATES))
    parser.add_argument("--skull-strip", default="auto", choices=METHODS,
                        help="auto: deepbet unless the input is already skull-stripped "
                             "(unused with --brainmask)")
    parser.add_argument("--bias-correct", action=argparse.BooleanOptionalAction, default=True,
                        help="smooth multiplicative bias-field correction inside the brain")
    parser.add_argument("--grid-shape", type=int, nargs=3, default=list(DEFAULT_GRID_SHAPE),
                        metavar=("I", "J", "K"))
    parser.add_argument("--grid-spacing", type=float, default=1.0, help="grid voxel size (mm)")
    parser.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N (default auto)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> None:
    """Run the preprocessing and print the output prefix and key numbers."""
    summary = preprocess_subject(args.t1w, args.out, args.labels, brainmask=args.brainmask,
                                 template=args.template, skull_strip=args.skull_strip,
                                 bias_correct=args.bias_correct,
                                 grid_shape=tuple(args.grid_shape),
                                 grid_spacing=args.grid_spacing, device=args.device,
                                 seed=args.seed)
    print(f"{args.out}: mask {summary['mask_volume_ml']:.0f} ml, "
          f"NCC {summary['affine_metric']['value']:.3f}, {summary['seconds']['total']:.1f} s")
