"""Convergence records: how accurate and how regular the deformation is while it is fitted.

Every ``track_every`` iterations (and before the first and after the last) the fields fitted so
far are evaluated on the whole fixed grid, as at inference: the moving labels are warped with
them (the same interpolation as the written ``_warped_labels``) and scored against the fixed
labels (mean Dice over the scored labels), and the share of fixed-label voxels with
det J <= 0 is counted (as ``nir evaluate`` does).  The last record therefore equals the
evaluation of the written outputs.  A record costs about one inference (a few seconds for a
1 mm brain on one CPU core); that time is kept out of the records' ``seconds`` and reported
apart.  Scoring reads the fields under ``torch.no_grad`` and draws no random numbers, so a
tracked registration gives bit-identical results to an untracked one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from nir.engine.inference import FieldModel, dense_deformation, field_to_world_displacement
from nir.engine.panels import PanelSlices
from nir.engine.params import RegistrationParams
from nir.errors import NirInputError
from nir.spatial.frame import FieldFrame
from nir.spatial.io import Volume
from nir.spatial.jacobian import jacobian_determinant_map
from nir.spatial.overlap import dice_per_label, folding_percent, mean_dice
from nir.spatial.warp import moving_coordinates, warp_labels

# Called after every iteration of a phase with the field being fitted and the iterations done.
Monitor = Callable[[FieldModel, int], None]


class ConvergenceTracker:
    """Mean Dice and % det J <= 0 of the current deformation, every ``every`` iterations."""

    def __init__(self, every: int, fixed_labels: Volume, moving_labels: Volume,
                 labels: Sequence[int], interpolation: str = "onehot",
                 device: torch.device | str = "cpu",
                 images: tuple[Volume, Volume] | None = None) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every = every
        self.labels = [int(label) for label in labels]
        self.interpolation = interpolation
        self.fixed = fixed_labels.data.to(device)
        self.fixed_affine = fixed_labels.affine
        self.moving = moving_labels.data.to(device)
        self.moving_shape, self.moving_affine = moving_labels.shape, moving_labels.affine
        self.records: list[dict[str, Any]] = []
        self.panels = None if images is None else PanelSlices(
            images[0].data.to(device), images[1].data.to(device), self.fixed > 0,
            self.fixed_affine)
        self.overhead = 0.0  # seconds spent scoring
        self._start = time.perf_counter()

    def start(self) -> None:
        """Start the fit clock and record the identity (iteration 0: the affine-only result)."""
        self._start, self.overhead, self.records = time.perf_counter(), 0.0, []
        if self.panels is not None:
            self.panels.warped, self.panels.detj = [], []
        self.record(torch.zeros((*self.fixed.shape, 3), device=self.fixed.device), 0, "start")

    def score(self, displacement: torch.Tensor) -> tuple[float, float]:
        """(mean Dice, % det J <= 0 in the fixed labels) of a fixed-grid RAS-mm displacement."""
        coords = moving_coordinates(displacement, self.fixed_affine, self.moving_shape,
                                    self.moving_affine)
        warped = warp_labels(self.moving, coords, self.interpolation)
        dice = mean_dice(dice_per_label(warped, self.fixed, self.labels))
        detj = jacobian_determinant_map(displacement, self.fixed_affine)
        if self.panels is not None:
            self.panels.take(coords, detj)
        return dice, folding_percent(detj, self.fixed > 0)

    def record(self, displacement: torch.Tensor, iteration: int, phase: str,
               begin: float | None = None) -> None:
        """Score ``displacement`` as the state after ``iteration`` iterations in all; the time
        from ``begin`` (default: now) on counts as tracking overhead."""
        begin = time.perf_counter() if begin is None else begin
        seconds = begin - self._start - self.overhead
        dice, folding = self.score(displacement)
        self.records.append({"iteration": iteration, "phase": phase,
                             "seconds": round(seconds, 3), "mean_dice": round(dice, 6),
                             "folding_percent": round(folding, 6)})
        self.overhead += time.perf_counter() - begin

    def record_fields(self, fields: list[FieldModel], frame: FieldFrame, iteration: int,
                      phase: str) -> None:
        """Score the composition of ``fields`` (NF1 first), evaluated as at inference."""
        begin = time.perf_counter()
        with torch.no_grad():
            phi = dense_deformation(fields, frame, self.fixed.device)
            self.record(field_to_world_displacement(phi, frame), iteration, phase, begin)

    def monitor(self, earlier: list[FieldModel], frame: FieldFrame, phase: str,
                offset: int) -> Monitor:
        """The callback of one phase: ``earlier`` are the frozen fields of previous phases
        and ``offset`` the iterations they took."""

        def on_iteration(model: FieldModel, done: int) -> None:
            if (offset + done) % self.every == 0:
                self.record_fields([*earlier, model], frame, offset + done, phase)

        return on_iteration

    def finish(self, fields: list[FieldModel], frame: FieldFrame, iteration: int,
               phase: str) -> None:
        """Record the fitted ``fields`` after ``iteration`` iterations unless already done."""
        if fields and (not self.records or self.records[-1]["iteration"] != iteration):
            self.record_fields(fields, frame, iteration, phase)

    def save_panels(self, path: str | Path) -> None:
        """Write the records' slices (:class:`~nir.engine.panels.PanelSlices`) to ``path``."""
        if self.panels is None:
            raise ValueError("this tracker keeps no slices (no images given)")
        self.panels.save(path, self.records)

    def to_dict(self) -> dict[str, Any]:
        """The records and their cost, for the registration summary."""
        return {"every": self.every, "labels": self.labels,
                "tracking_seconds": round(self.overhead, 3),
                "seconds_per_record": round(self.overhead / max(len(self.records), 1), 3),
                "records": self.records}


# Picks the scored labels among those present in either label map (e.g. ``nir evaluate
# --labels-set``'s rule, built by the command line, which knows label sets and tables).
LabelSelector = Callable[[list[int]], list[int]]


def every_label(present: list[int]) -> list[int]:
    """The default selector: every non-zero label present."""
    return sorted(v for v in present if v != 0)


def tracker_for(params: RegistrationParams, fixed_labels: Volume | None,
                moving_labels: Volume | None, select_labels: LabelSelector = every_label,
                device: torch.device | str = "cpu",
                images: tuple[Volume, Volume] | None = None) -> ConvergenceTracker | None:
    """The tracker ``params.track_every`` asks for (None when it is 0); with the (fixed,
    moving) ``images`` it also keeps the slices of the paper's Fig 5 (:mod:`nir.engine.panels`).

    ``select_labels`` picks the scored labels among those present in either label map;
    NirInputError when a label map is missing or none of the picked labels is present.
    """
    if not params.track_every:
        return None
    if fixed_labels is None or moving_labels is None:
        raise NirInputError("--fixed-labels", "track_every needs --fixed-labels and "
                                              "--moving-labels")
    present = torch.cat([fixed_labels.data.unique(), moving_labels.data.unique()]).unique()
    labels = select_labels([int(v) for v in present.tolist()])
    if not torch.isin(torch.tensor(labels), present).any():
        raise NirInputError("--labels-set", f"none of {labels} occurs in {fixed_labels.path} "
                                            f"or {moving_labels.path}")
    return ConvergenceTracker(params.track_every, fixed_labels, moving_labels, labels,
                              params.label_interpolation, device, images)
