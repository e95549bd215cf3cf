"""``nir template``: build an unbiased study template from preprocessed images (the workflow's
template.build runs the same steps as one job per subject and iteration)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nir.commands.register import add_runtime_arguments, apply_runtime
from nir.engine.pair import register_files
from nir.engine.params import PRESETS, load_params
from nir.errors import NirInputError
from nir.spatial.io import write_text
from nir.study.cohort import check_id
from nir.study.template_steps import (
    affine_dice,
    copy_file,
    progress_table,
    write_final_labels,
    write_initial,
    write_round,
    write_update,
)

HELP = ("Build a study template: register every image onto the current template, average them "
        "through the inverse of their mean displacement, repeat. Writes OUT/iter-NN/ (template, "
        "registrations, round.json), OUT/template.nii.gz, OUT/progress.tsv and, with --labels, "
        "OUT/template_labels.nii.gz. A rerun keeps finished registrations and templates.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``template`` options."""
    parser.add_argument("--images", nargs="+", required=True, type=Path, metavar="IMG",
                        help="preprocessed images on one grid (IDs: file names up to the first .)")
    parser.add_argument("--labels", nargs="+", type=Path, metavar="LAB",
                        help="their label maps, in the same order")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument("--iterations", type=int, default=3,
                        help="template updates K; round K registers onto the final template")
    parser.add_argument("--initial", default="mean",
                        help="iteration-0 template: mean, mni152 or an image ID (default mean)")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="fast",
                        help="registration preset (default fast)")
    parser.add_argument("--config", type=Path, metavar="params.yaml",
                        help="YAML of registration parameters; wins over --preset")
    add_runtime_arguments(parser)


def _ids(images: list[Path]) -> list[str]:
    ids = [check_id(p.name.split(".")[0], p, "image ID") for p in images]
    if len(set(ids)) != len(ids):
        raise NirInputError("--images", "image IDs (file names up to the first '.') must be "
                                        "unique")
    return ids


def run(args: argparse.Namespace) -> None:
    """Run every iteration in turn."""
    device = apply_runtime(args)
    if args.iterations < 1:
        raise NirInputError("--iterations", f"must be >= 1, got {args.iterations}")
    if args.labels and len(args.labels) != len(args.images):
        raise NirInputError("--labels", f"{len(args.labels)} label maps for "
                                        f"{len(args.images)} images")
    params = load_params(args.config, preset=None if args.config else args.preset)
    ids = _ids(args.images)
    labels = args.labels or [None] * len(ids)
    out = args.out
    template = out / "iter-00" / "template.nii.gz"
    if not template.exists():
        write_initial(args.images, template, args.initial, ids)
    for k in range(args.iterations + 1):
        folder = out / f"iter-{k:02d}"
        template = folder / "template.nii.gz"
        prefixes = [folder / "register" / sid / sid for sid in ids]
        for image, label, prefix in zip(args.images, labels, prefixes, strict=True):
            if not Path(f"{prefix}_summary.json").exists():
                register_files(template, image, prefix, params, moving_labels=label,
                               seed=args.seed, device=device, progress=not args.quiet,
                               inverse=k == args.iterations and params.mode == "velocity")
        warps = [Path(f"{p}_warp.nii.gz") for p in prefixes]
        warped_labels = [Path(f"{p}_warped_labels.nii.gz") for p in prefixes] if args.labels \
            else []
        write_round(template, warps, warped_labels, k, folder / "round.json")
        nxt = out / f"iter-{k + 1:02d}" / "template.nii.gz"
        if k < args.iterations and not nxt.exists():
            write_update(args.images, warps, template, nxt, nxt.parent / "update.json")
        print(f"nir template: iteration {k} done -> {template}")
    copy_file(template, out / "template.nii.gz")
    table = progress_table([out / f"iter-{k:02d}" / "round.json"
                            for k in range(args.iterations + 1)])
    if args.labels:
        write_final_labels(template, warped_labels, out / "template_labels.nii.gz",
                           out / "template_brainmask.nii.gz")
        table["affine_groupwise_dice"] = round(affine_dice(args.labels), 4)
    write_text(table.to_csv(sep="\t", index=False), out / "progress.tsv")
    print(table.to_string(index=False))

