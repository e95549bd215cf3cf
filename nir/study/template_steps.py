"""File-level steps of template construction, one per workflow job (and the ``nir template``
loop): the initial template, the shape update, a round's measures and the final label map."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nir.spatial.io import atomic_write, load_labels, load_volume, save_volume, write_text
from nir.study.template import (
    Grid,
    foreground,
    groupwise_dice,
    initial_template,
    load_images,
    majority_labels,
    mean_displacement,
    read_label_maps,
    shape_update,
    sharpness,
)


def write_initial(images: Sequence[str | Path], out: str | Path, initial: str = "mean",
                  ids: Sequence[str] | None = None) -> Path:
    """Write the iteration-0 template on the images' grid, with the first image's header."""
    volumes = load_images(images)
    data = initial_template(volumes, initial, ids)
    return save_volume(data, volumes[0].affine, out, header=volumes[0].header, dtype=np.float32)


def write_update(images: Sequence[str | Path], warps: Sequence[str | Path],
                 template: str | Path, out: str | Path, summary: str | Path) -> dict[str, Any]:
    """Write the next template (see :func:`nir.study.template.shape_update`) and a JSON of the
    update: the cohort's mean displacement seen from ``template`` and the inverse's residual."""
    current = load_volume(template)
    update = shape_update(load_images(images), warps, current)
    save_volume(update.template, current.affine, out, header=current.header, dtype=np.float32)
    record = {"mean_displacement_mm": round(update.mean_norm_mm, 4),
              "max_displacement_mm": round(update.max_norm_mm, 4),
              "inverse_residual_mm": round(update.inverse_residual_mm, 5)}
    write_text(json.dumps(record, indent=1), summary)
    return record


def round_measures(template: str | Path, warps: Sequence[str | Path],
                   warped_labels: Sequence[str | Path] = ()) -> dict[str, Any]:
    """What one round of registrations to ``template`` shows: the template's sharpness, the
    norm of the mean displacement over its foreground (its bias: 0 at the cohort's centre) and
    the group-wise Dice of the warped labels."""
    volume = load_volume(template)
    grid = Grid.of(volume)
    norm = mean_displacement(warps, grid).norm(dim=-1)[foreground(volume.data)]
    measures = {"subjects": len(warps), "sharpness": round(sharpness(volume.data, grid), 5),
                "mean_displacement_mm": round(float(norm.mean()), 4),
                "max_displacement_mm": round(float(norm.max()), 4)}
    if warped_labels:
        maps = read_label_maps(warped_labels, volume)
        measures["groupwise_dice"] = round(groupwise_dice(maps), 4)
    return measures


def write_round(template: str | Path, warps: Sequence[str | Path],
                warped_labels: Sequence[str | Path], iteration: int, out: str | Path) -> None:
    """:func:`round_measures` of iteration ``iteration`` as JSON."""
    record = {"iteration": iteration, **round_measures(template, warps, warped_labels)}
    write_text(json.dumps(record, indent=1), out)


def write_final_labels(template: str | Path, warped_labels: Sequence[str | Path],
                       labels_out: str | Path, mask_out: str | Path) -> None:
    """The template's label map (majority vote of the warped labels) and its brain mask
    (labels > 0), with the template's header."""
    volume = load_volume(template)
    labels = majority_labels(read_label_maps(warped_labels, volume))
    save_volume(labels, volume.affine, labels_out, header=volume.header, dtype=np.int32)
    save_volume((labels > 0).astype(np.uint8), volume.affine, mask_out, header=volume.header,
                dtype=np.uint8)


def affine_dice(labels: Sequence[str | Path]) -> float:
    """Group-wise Dice of label maps already on one grid (the preprocessed, affine-only ones)."""
    return groupwise_dice(read_label_maps(labels, load_labels(labels[0])))


def progress_table(rounds: Sequence[str | Path]) -> pd.DataFrame:
    """One row per iteration from the round JSONs, in iteration order."""
    rows = [json.loads(Path(p).read_text()) for p in rounds]
    return pd.DataFrame(rows).sort_values("iteration").reset_index(drop=True)


def copy_file(source: str | Path, target: str | Path) -> None:
    """Copy ``source`` to ``target`` atomically (the final template under a fixed name)."""
    with atomic_write(target) as tmp:
        shutil.copyfile(source, tmp)
