"""``nir evaluate``: Dice/HD95 before and after registration plus regularity, as a long CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from nir.commands import label_table_option
from nir.errors import NirInputError
from nir.evaluation import metrics
from nir.evaluation.columns import AFFINE, COLUMNS, PAIR_LABEL, PAIR_STRUCTURE
from nir.evaluation.label_table import LabelTable
from nir.evaluation.labels import format_labels, label_name, parse_label_set
from nir.spatial import overlap
from nir.spatial.io import Volume, check_grid, load_labels, load_volume, write_csv
from nir.summary import read_json_object

HELP = ("Score one registered pair: per-structure Dice and HD95 before (moving vs fixed labels, "
        "affine only) and after (warped vs fixed labels), plus folding percentage, SDlogJ, "
        "runtime and memory, written as a long-format CSV.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``evaluate`` options."""
    parser.add_argument("--fixed-labels", required=True, type=Path, metavar="FL",
                        help="label map of the fixed image")
    parser.add_argument("--moving-labels", required=True, type=Path, metavar="ML",
                        help="moving label map on the fixed grid before deformable registration")
    parser.add_argument("--warped-labels", required=True, type=Path, metavar="WL",
                        help="moving label map warped onto the fixed grid")
    parser.add_argument("--jacobian", type=Path, metavar="J",
                        help="det J map on the fixed grid; required unless --method affine")
    parser.add_argument("--mask", type=Path, metavar="M",
                        help="region for folding %% and SDlogJ (default: the brain, fixed "
                             "labels > 0, as in the nir register summary)")
    parser.add_argument("--summary", type=Path, metavar="S.json",
                        help="registration summary JSON (seconds, peak_rss_mb, device, "
                             "peak_device_mb)")
    parser.add_argument("--pair", required=True, help="pair ID, e.g. sub-01_to_sub-02")
    parser.add_argument("--fixed", default="", help="fixed subject name")
    parser.add_argument("--moving", default="", help="moving subject name")
    parser.add_argument("--method", required=True, help="method name, e.g. nir or affine")
    parser.add_argument("--labels-set", default=None,
                        help="'aseg' (FreeSurfer's 32 main aseg structures; the default without "
                             "--label-table), 'table' (the label table's non-zero ids; the "
                             "default with it), 'all' (every label present) or comma-separated "
                             "IDs like 2,41,17")
    label_table_option.add_argument(parser)
    parser.add_argument("--out", required=True, type=Path, metavar="pair.csv",
                        help="output CSV, columns: " + ",".join(COLUMNS))


def _read_summary(path: Path | None) -> dict:
    if path is None:
        return {}
    return read_json_object(path)


def _number(summary: dict, key: str, path: Path | None) -> float:
    value = summary.get(key)
    if value is None:
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise NirInputError(path, f"{key!r} is not a number: {value!r}") from exc


def _regularity(args: argparse.Namespace, fixed: Volume) -> tuple[float, float]:
    """(folding %, SDlogJ) of the deformation inside the mask."""
    if args.jacobian is None:
        if args.method != AFFINE:
            raise NirInputError("--jacobian", f"required for method {args.method!r} "
                                              f"(only '{AFFINE}' may omit it)")
        return 0.0, 0.0  # an affine-only result has no deformation: det J = 1 everywhere
    detj = load_volume(args.jacobian)
    check_grid(args.jacobian, detj.shape, detj.affine, fixed, "fixed labels'")
    if args.mask is not None:
        mask_vol = load_labels(args.mask)
        check_grid(args.mask, mask_vol.shape, mask_vol.affine, fixed, "fixed labels'")
        mask = mask_vol.data.numpy() > 0
    else:
        mask = overlap.brain_mask(fixed.data.numpy())[0]
    detj_np = detj.data.numpy()
    return overlap.folding_percent(detj_np, mask), metrics.sdlogj(detj_np, mask)


def _stage_rows(stage: str, fixed: np.ndarray, fixed_surfaces: metrics.LabelSurfaces,
                other: np.ndarray, other_surfaces: metrics.LabelSurfaces, labels: list[int],
                spacing: np.ndarray, table: LabelTable | None) -> list[tuple]:
    dice = overlap.dice_per_label(other, fixed, labels)
    hd = metrics.hd95_per_label(other_surfaces, fixed_surfaces, labels, spacing)
    rows = []
    for label in labels:
        name = label_name(label, table)
        rows.append((stage, name, label, "dice", dice[label]))
        rows.append((stage, name, label, "hd95", hd[label]))
    rows.append((stage, PAIR_STRUCTURE, PAIR_LABEL, "mean_dice", overlap.mean_dice(dice)))
    rows.append((stage, PAIR_STRUCTURE, PAIR_LABEL, "mean_hd95", overlap.mean_finite(hd.values())))
    return rows


def _scored_labels(args: argparse.Namespace, present: np.ndarray, table: LabelTable | None,
                   fixed: Volume, moving: Volume) -> list[int]:
    """The labels to score; an error if none occurs in either map, and with a label table a
    warning on stderr for those that occur in neither (their Dice and HD95 are left empty)."""
    labels = parse_label_set(args.labels_set, present.tolist(), table)
    absent = [label for label in labels if label not in present]
    source = "--labels-set" if table is None else table.path
    if len(absent) == len(labels):
        raise NirInputError(source, f"none of the scored labels ({format_labels(labels)}) "
                                    f"occurs in {fixed.path} or {moving.path}")
    if absent and table is not None:
        print(f"nir evaluate: warning: {table.path}: label(s) {format_labels(absent)} occur in "
              f"neither {fixed.path} nor {moving.path}; their Dice and HD95 are left empty",
              file=sys.stderr)
    return labels


def evaluate(args: argparse.Namespace) -> pd.DataFrame:
    """All rows of one pair's evaluation, in the documented column order."""
    table = label_table_option.load(args)
    fixed = load_labels(args.fixed_labels)
    moving = load_labels(args.moving_labels, like=fixed)
    warped = load_labels(args.warped_labels, like=fixed)
    summary = _read_summary(args.summary)
    folding, sdlogj = _regularity(args, fixed)
    fixed_np, moving_np, warped_np = (v.data.numpy() for v in (fixed, moving, warped))
    fixed_s, moving_s, warped_s = map(metrics.label_surfaces, (fixed_np, moving_np, warped_np))
    present = np.union1d(fixed_s.present(), moving_s.present())
    labels = _scored_labels(args, present, table, fixed, moving)

    rows = _stage_rows("before", fixed_np, fixed_s, moving_np, moving_s, labels, fixed.spacing,
                       table)
    rows += [("before", PAIR_STRUCTURE, PAIR_LABEL, "folding_percent", 0.0),
             ("before", PAIR_STRUCTURE, PAIR_LABEL, "sdlogj", 0.0)]
    rows += _stage_rows("after", fixed_np, fixed_s, warped_np, warped_s, labels, fixed.spacing,
                        table)
    rows += [("after", PAIR_STRUCTURE, PAIR_LABEL, "folding_percent", folding),
             ("after", PAIR_STRUCTURE, PAIR_LABEL, "sdlogj", sdlogj),
             ("after", PAIR_STRUCTURE, PAIR_LABEL, "seconds",
              _number(summary, "seconds", args.summary)),
             ("after", PAIR_STRUCTURE, PAIR_LABEL, "peak_rss_mb",
              _number(summary, "peak_rss_mb", args.summary))]
    device = str(summary.get("device") or "")
    on_gpu = device.startswith("cuda") and summary.get("peak_device_mb") is not None
    rows.append(("after", PAIR_STRUCTURE, PAIR_LABEL, "peak_memory_mb",
                 _number(summary, "peak_device_mb" if on_gpu else "peak_rss_mb", args.summary)))
    frame = pd.DataFrame(rows, columns=["stage", "structure", "label", "metric", "value"])
    frame.insert(0, "pair", args.pair)
    frame.insert(1, "fixed", args.fixed)
    frame.insert(2, "moving", args.moving)
    frame.insert(3, "method", args.method)
    frame["device"] = device
    return frame[list(COLUMNS)]


def run(args: argparse.Namespace) -> None:
    """Evaluate one pair and write its CSV."""
    if not args.pair.strip() or not args.method.strip():
        raise NirInputError("--pair/--method", "must be non-empty")
    write_csv(evaluate(args), args.out)
