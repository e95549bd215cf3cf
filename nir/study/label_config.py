"""The ``evaluation`` section's label numbering, checked once when the workflow starts.

``evaluation.label_table`` names the structures of label maps not numbered as FreeSurfer's aseg,
and ``evaluation.labels_set`` picks the scored ones (default: the table's non-zero ids with a
table, FreeSurfer's ``aseg`` without).  Every problem a job would meet (an unreadable or
malformed table, ``aseg`` with another numbering, ids the table does not name) stops the run
before any job, naming the file or the config key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nir.errors import NirInputError
from nir.evaluation.label_table import read_label_table
from nir.evaluation.labels import engine_label_set, freesurfer_numbered, parse_label_set

LABELS_SET_KEY = "evaluation.labels_set"


@dataclass(frozen=True)
class LabelConfig:
    """The label table (or None) and the label set as every job is given it."""

    table: Path | None
    labels_set: str  # for --labels-set of nir register (convergence records) and nir evaluate


def label_config(config: dict) -> LabelConfig:
    """Check the label table and label set of a validated workflow ``config``.

    ``labels_set`` comes back as the jobs take it: ``table`` becomes the table's ids, since
    ``nir register`` (the convergence records) knows no label table.  A table that is not
    FreeSurfer-numbered is refused with a template study or TBM, whose group-wise Dice and
    per-structure tests still assume aseg ids.
    """
    evaluation = config.get("evaluation") or {}
    path = evaluation.get("label_table")
    table = None if path is None else read_label_table(path)
    spec = evaluation.get("labels_set")
    try:
        parse_label_set(spec, (), table)
    except NirInputError as exc:
        raise NirInputError(LABELS_SET_KEY, exc.problem) from exc
    if table is not None and not freesurfer_numbered(table):
        users = [key for key in ("template.build", "tbm.enabled")
                 if (config.get(key.split(".")[0]) or {}).get(key.split(".")[1])]
        if users:
            raise NirInputError(path, f"this label table numbers structures otherwise than "
                                      f"FreeSurfer's aseg, which {' and '.join(users)} still "
                                      "assume (group-wise Dice, structure volumes); use "
                                      "FreeSurfer-numbered label maps for a template study")
    return LabelConfig(None if path is None else Path(path), engine_label_set(spec, table))
