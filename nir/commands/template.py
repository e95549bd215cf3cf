"""``nir template``: build an unbiased study template from preprocessed images, round by round
as :class:`nir.study.template_plan.TemplatePlan` lays out (the workflow's template.build runs
the same plan as one job per subject and round)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nir.commands.register import add_runtime_arguments, add_warp_dtype_argument, apply_runtime
from nir.engine.pair import register_files
from nir.engine.params import PRESETS, load_params
from nir.errors import NirInputError
from nir.spatial.io import write_text
from nir.study.cohort import check_id
from nir.study.template_plan import TemplatePlan
from nir.study.template_qc import write_template_qc
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
        "registrations, round.json), OUT/template.nii.gz, OUT/progress.tsv, the QC of the last "
        "round (OUT/qc/: Dice with --labels, NCC, outliers flagged, a panel per image) and, "
        "with --labels, OUT/template_labels.nii.gz. The rounds before the last keep their "
        "warps and det J maps only with --keep-rounds. A rerun keeps finished registrations "
        "and templates.")


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
    parser.add_argument("--keep-rounds", action="store_true",
                        help="keep the warps and det J maps of the rounds before the last "
                             "(default: deleted once the shape update has read them)")
    add_warp_dtype_argument(parser)
    add_runtime_arguments(parser)


def _ids(images: list[Path]) -> list[str]:
    ids = [check_id(p.name.split(".")[0], p, "image ID") for p in images]
    if len(set(ids)) != len(ids):
        raise NirInputError("--images", "image IDs (file names up to the first '.') must be "
                                        "unique")
    return ids


def run(args: argparse.Namespace) -> None:
    """Run every round in turn, skipping what an earlier run finished."""
    device = apply_runtime(args)
    if args.iterations < 1:
        raise NirInputError("--iterations", f"must be >= 1, got {args.iterations}")
    if args.labels and len(args.labels) != len(args.images):
        raise NirInputError("--labels", f"{len(args.labels)} label maps for "
                                        f"{len(args.images)} images")
    params = load_params(args.config, preset=None if args.config else args.preset)
    ids = _ids(args.images)
    labels = args.labels or [None] * len(ids)
    plan = TemplatePlan(str(args.out), args.iterations, params.mode == "velocity",
                        keep_rounds=args.keep_rounds, warp_dtype=args.warp_dtype)
    if not Path(plan.image(0)).exists():
        write_initial(args.images, plan.image(0), args.initial, ids)
    for k in range(args.iterations + 1):
        final = plan.is_final(k)
        for sid, image, label in zip(ids, args.images, labels, strict=True):
            if not Path(plan.registered("summary", k, sid)).exists():
                register_files(plan.image(k), image, plan.prefix(k, sid), params,
                               moving_labels=label, seed=args.seed, device=device,
                               progress=not args.quiet, inverse=plan.inverse(final),
                               warp_dtype=plan.warp_dtype)
        warps = [plan.registered("warp", k, sid) for sid in ids]
        warped_labels = [plan.registered("warped_labels", k, sid) for sid in ids] \
            if args.labels else []
        if not Path(plan.round_record(k)).exists():
            write_round(plan.image(k), warps, warped_labels, k, plan.round_record(k))
        if not final:
            if not Path(plan.image(k + 1)).exists():
                write_update(args.images, warps, plan.image(k), plan.image(k + 1),
                             plan.update_record(k + 1))
            for path in (p for sid in ids for p in plan.dropped(k, sid)):
                Path(path).unlink(missing_ok=True)
        print(f"nir template: iteration {k} done -> {plan.image(k)}")
    out = args.out
    copy_file(plan.image(args.iterations), out / "template.nii.gz")
    table = progress_table([plan.round_record(k) for k in range(args.iterations + 1)])
    template_labels = out / "template_labels.nii.gz" if args.labels else None
    if template_labels:
        write_final_labels(plan.image(args.iterations), warped_labels, template_labels,
                           out / "template_brainmask.nii.gz")
        table["affine_groupwise_dice"] = round(affine_dice(args.labels), 4)
    write_text(table.to_csv(sep="\t", index=False), out / "progress.tsv")
    print(table.to_string(index=False))
    qc = write_template_qc(out / "template.nii.gz", template_labels, ids,
                           [plan.registered("warped", args.iterations, sid) for sid in ids],
                           warped_labels or None, plan.qc("template_qc.csv"),
                           plan.qc("template_qc.md"), [plan.qc(f"{sid}.png") for sid in ids])
    print(f"nir template: QC of the last round -> {plan.qc('template_qc.csv')}; outliers: "
          f"{', '.join(qc.loc[qc['outlier'], 'subject']) or 'none'}")
