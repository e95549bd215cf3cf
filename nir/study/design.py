"""The group design of a morphometry study, read from a participants table at config time.

The table is the sample sheet (a ``group`` column beside ``subject``, ``t1w``...) or a BIDS
``participants.tsv`` (subjects in ``participant_id``).  Each analysed subject needs a group (one
of exactly two) and a number for every covariate; each group needs at least two subjects.  Every
problem is one NirInputError naming the table, the column and the subject.

A covariate of :data:`COMPUTED` (``tiv``, the total intracranial volume) that is not a column of
the table is computed by the workflow (:func:`nir.stats.volumes.mask_volume_ml` of each
subject's native brain mask): at config time it is only counted in the model, and its values
join the design once computed (``computed``).
"""

from __future__ import annotations

import csv
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nir.errors import NirInputError
from nir.study.cohort import EXCLUDE_KEY

ID_COLUMNS = ("subject", "participant_id")
MISSING = ("", "n/a", "na", "nan")
COMPUTED = ("tiv",)  # covariates the workflow can compute when the table has no such column
MIN_GROUP = 2  # subjects per group


@dataclass(frozen=True)
class Design:
    """Groups and covariates of the analysed subjects, in cohort order.

    The contrast is ``levels[1] - levels[0]`` (e.g. patient - control).
    """

    subjects: tuple[str, ...]
    groups: tuple[str, ...]
    levels: tuple[str, str]
    covariates: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def indicator(self) -> np.ndarray:
        """1.0 for subjects of ``levels[1]``, 0.0 for ``levels[0]``."""
        return np.array([g == self.levels[1] for g in self.groups], dtype=float)

    def matrix(self) -> np.ndarray:
        """(n, p) design: intercept, group indicator, then each covariate centred."""
        columns = [np.ones(len(self.subjects)), self.indicator]
        columns += [v - v.mean() for v in self.covariates.values()]
        return np.column_stack(columns)

    def columns(self) -> list[str]:
        """Names of the design columns."""
        return ["intercept", f"{self.levels[1]}-{self.levels[0]}", *self.covariates]


def _read_table(path: Path) -> tuple[str, dict[str, dict[str, str]], list[str]]:
    if not path.is_file():
        raise NirInputError(path, "participants table does not exist")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
        columns = [c.strip() for c in reader.fieldnames or []]
    id_column = next((c for c in ID_COLUMNS if c in columns), None)
    if id_column is None:
        raise NirInputError(path, f"needs a subject column ({' or '.join(ID_COLUMNS)}); "
                                  f"found: {', '.join(columns)}")
    return id_column, {row[id_column]: row for row in rows}, columns


def _value(path: Path, rows: dict[str, dict[str, str]], sid: str, column: str,
           id_column: str) -> str:
    if sid not in rows:
        raise NirInputError(path, f"subject {sid!r} has no row (column {id_column!r})")
    value = rows[sid].get(column, "")
    if value.lower() in MISSING:
        raise NirInputError(path, f"column {column!r}: subject {sid!r} has no value")
    return value


def group_levels(path: str | Path, column: str, groups: Mapping[str, str],
                 wanted: Sequence[str] | None = None,
                 dropped: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The (reference, compared) groups of the analysed subjects (``groups``: ID -> group
    value, from ``column`` of the table at ``path``), each checked to keep at least 2 subjects.
    ``dropped``: the groups of the subjects the config's ``exclude`` left out, so that a group
    they empty is reported as their doing (an error naming ``config: exclude``)."""
    dropped = {sid: g for sid, g in (dropped or {}).items() if g.lower() not in MISSING}
    found = sorted(set(groups.values()))
    everyone = sorted(set(found) | set(dropped.values()))
    if wanted:
        if len(wanted) != 2 or wanted[0] == wanted[1]:
            raise NirInputError(path, f"tbm.groups must name two different groups, got "
                                      f"{list(wanted)}")
        for sid, g in groups.items():
            if g not in wanted:
                raise NirInputError(path, f"column {column!r}: subject {sid!r} is in group "
                                          f"{g!r}, not one of tbm.groups {list(wanted)}")
        levels = (str(wanted[0]), str(wanted[1]))
    elif len(found) < 2 and len(everyone) == 2:  # the exclusions emptied a group: said below
        levels = (everyone[0], everyone[1])
    elif len(found) != 2:
        raise NirInputError(path, f"column {column!r} has {len(found)} group(s) "
                                  f"({', '.join(found)}); the comparison needs exactly 2 "
                                  "(list them in tbm.groups, reference first)")
    else:
        levels = (found[0], found[1])
    for level in levels:
        _check_size(path, column, level, groups, dropped)
    return levels


def _check_size(path: str | Path, column: str, level: str, groups: Mapping[str, str],
                dropped: Mapping[str, str]) -> None:
    members = [sid for sid, g in groups.items() if g == level]
    if len(members) >= MIN_GROUP:
        return
    named = ", ".join(repr(s) for s in members) or "none"
    gone = [repr(sid) for sid, g in dropped.items() if g == level]
    if gone:
        verb = "is" if len(gone) == 1 else "are"
        raise NirInputError(EXCLUDE_KEY, f"group {level!r} (column {column!r} of {path}) keeps "
                                         f"{len(members)} subject(s) ({named}) once "
                                         f"{', '.join(gone)} {verb} excluded; each group needs "
                                         f"at least {MIN_GROUP}")
    raise NirInputError(path, f"column {column!r}: group {level!r} has {len(members)} "
                              f"subject(s) ({named}); each group needs at least {MIN_GROUP}")


def _covariate(path: Path, rows: dict[str, dict[str, str]], subjects: Sequence[str],
               column: str, id_column: str) -> np.ndarray:
    values = []
    for sid in subjects:
        text = _value(path, rows, sid, column, id_column)
        try:
            number = float(text)
        except ValueError:
            raise NirInputError(path, f"column {column!r}: subject {sid!r} has {text!r}, not "
                                      "a number (code categories as numbers, e.g. sex 0/1)"
                                ) from None
        if not np.isfinite(number):
            raise NirInputError(path, f"column {column!r}: subject {sid!r} has {text!r}")
        values.append(number)
    array = np.asarray(values)
    if np.ptp(array) == 0:
        raise NirInputError(path, f"covariate column {column!r} has the same value for every "
                                  "subject; drop it")
    return array


def computed_covariates(table: str | Path, covariates: Sequence[str],
                        computable: Collection[str] = COMPUTED) -> tuple[str, ...]:
    """The covariates the workflow has to compute: those of :data:`COMPUTED` that are not a
    column of ``table`` (all of them while the table does not exist yet, e.g. the demo's);
    NirInputError when one of them is not ``computable``."""
    path = Path(table)
    columns = _read_table(path)[2] if path.is_file() else []
    needed = tuple(c for c in covariates if c in COMPUTED and c not in columns)
    for column in needed:
        if column not in computable:
            raise _unknown_column(path, column, columns, computable)
    return needed


def _unknown_column(path: Path, column: str, columns: Sequence[str],
                    computable: Collection[str]) -> NirInputError:
    if column in COMPUTED:
        return NirInputError(path, f"covariate {column!r} is not a column here, and the workflow "
                                   "computes it only from the native brain masks of its "
                                   "preprocessing (with preprocessed: true the images are "
                                   "already in a common space, where the brain volume no longer "
                                   f"measures head size): add a {column!r} column (in ml, e.g. "
                                   "FreeSurfer's eTIV) or run the preprocessing")
    hint = f"; the workflow computes {', '.join(computable)}" if computable else ""
    return NirInputError(path, f"no column {column!r} (found: {', '.join(columns)}{hint})")


def read_design(table: str | Path, subjects: Sequence[str], group_column: str = "group",
                covariates: Sequence[str] = (), groups: Sequence[str] | None = None,
                computable: Collection[str] = (),
                computed: Mapping[str, Mapping[str, float]] | None = None,
                excluded: Collection[str] = ()) -> Design:
    """The design of ``subjects`` from ``table``; see the module docstring for the checks.

    ``excluded``: the subjects the config's ``exclude`` left out of ``subjects`` (rows of the
    table that are not analysed; named in the error if their absence empties a group).
    ``computable``: the covariates of :data:`COMPUTED` the workflow can compute (a table column
    of that name is used instead). ``computed``: their values per subject, once known; until
    then they are counted in the model (the degrees-of-freedom check) but left out of the
    returned design."""
    path = Path(table)
    id_column, rows, columns = _read_table(path)
    if group_column not in columns:
        raise _unknown_column(path, group_column, columns, ())
    pending = []
    for column in covariates:
        if column in columns:
            continue
        if column not in computable:
            raise _unknown_column(path, column, columns, computable)
        pending.append(column)
    by_subject = {sid: _value(path, rows, sid, group_column, id_column) for sid in subjects}
    dropped = {sid: rows[sid].get(group_column, "") for sid in excluded if sid in rows}
    levels = group_levels(path, group_column, by_subject, groups, dropped)
    values = {}
    for column in covariates:
        if column not in pending:
            values[column] = _covariate(path, rows, subjects, column, id_column)
        elif computed is not None and column in computed:
            values[column] = _computed(path, column, computed[column], subjects)
    design = Design(tuple(subjects), tuple(by_subject[s] for s in subjects), levels, values)
    model_columns = design.matrix().shape[1] + len(set(covariates) - set(values))
    if np.linalg.matrix_rank(design.matrix()) < design.matrix().shape[1]:
        raise NirInputError(path, f"covariates {list(covariates)} are collinear with the groups")
    if len(subjects) <= model_columns:
        raise NirInputError(path, f"{len(subjects)} subjects leave no residual degrees of "
                                  f"freedom for {model_columns} model columns (intercept, "
                                  f"group, {len(covariates)} covariate(s))")
    return design


def _computed(path: Path, column: str, values: Mapping[str, float],
              subjects: Sequence[str]) -> np.ndarray:
    missing = [sid for sid in subjects if sid not in values]
    if missing:
        raise NirInputError(path, f"computed covariate {column!r} has no value for "
                                  f"{', '.join(map(repr, missing))}")
    array = np.asarray([float(values[sid]) for sid in subjects])
    if not np.isfinite(array).all() or np.ptp(array) == 0:
        raise NirInputError(path, f"computed covariate {column!r} is not finite or the same "
                                  "for every subject")
    return array
