"""``nir demo``: write a synthetic cohort (no download) and its sample sheet."""

from __future__ import annotations

import argparse
from dataclasses import fields

from nir.study.demo import DemoSettings, write_demo

HELP = ("Write a synthetic cohort made from the bundled MNI152 template: "
        "OUT/sub-XX/anat/sub-XX_T1w.nii.gz, sub-XX_dseg.nii.gz and OUT/cohort.tsv.")

_FLAG_HELP = {
    "spacing_mm": "voxel size of the generated images in mm",
    "deformation_mm": "peak velocity-field component of the random deformation in mm",
    "smoothness_mm": "Gaussian sigma of the random velocity field in mm",
    "rotation_deg": "maximum rotation about each axis in degrees",
    "translation_mm": "maximum translation along each axis in mm",
    "scale": "maximum relative scaling along each axis (0.05 = +-5 %%)",
    "bias": "maximum multiplicative bias-field amplitude (0.15 = +-15 %%)",
    "noise": "Rician noise sigma as a fraction of the 99th intensity percentile",
    "groups": "1, or 2 for a control/patient cohort with hippocampus labels and participants.tsv",
    "atrophy": "left-hippocampal volume fraction the patients lose (groups 2; 0 = null cohort)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n-subjects", type=int, default=5, help="number of subjects (>= 2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same cohort)")
    defaults = DemoSettings()
    for field in fields(DemoSettings):
        parser.add_argument(f"--{field.name.replace('_', '-')}",
                            type=type(getattr(defaults, field.name)),
                            default=getattr(defaults, field.name),
                            help=f"{_FLAG_HELP[field.name]} (default: %(default)s)")


def run(args: argparse.Namespace) -> None:
    settings = DemoSettings(**{f.name: getattr(args, f.name) for f in fields(DemoSettings)})
    subjects = write_demo(args.out, args.n_subjects, args.seed, settings)
    print(f"wrote {len(subjects)} synthetic subjects and {args.out}/cohort.tsv")
