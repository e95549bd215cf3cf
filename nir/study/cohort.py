"""Cohort discovery (sample sheet, BIDS root or demo), strict subject-ID checks and pair lists.

A subject ID becomes part of file paths and shell commands, so it must match
:data:`SUBJECT_ID_PATTERN`; anything else is refused before a single job runs.  A pair registers
``moving`` onto ``fixed`` (the ANTs convention) and is named ``{moving}_to_{fixed}``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import permutations
from pathlib import Path

import numpy as np

from nir.errors import NirInputError

ID_REGEX = r"[A-Za-z0-9][A-Za-z0-9_-]*"
SUBJECT_ID_PATTERN = rf"^{ID_REGEX}$"  # as documented; matched whole, by re.fullmatch
PAIR_SEPARATOR = "_to_"
# a subject ID inside a pair ID: a safe ID without the separator, so pair IDs parse one way
PAIR_MEMBER_REGEX = rf"[A-Za-z0-9](?:(?!{PAIR_SEPARATOR})[A-Za-z0-9_-])*"
PAIR_MODES = ("all", "template", "random", "file", "none")
SHEET_COLUMNS = ("subject", "t1w", "labels", "brainmask")
EXCLUDE_KEY = "config: exclude"  # how errors of the exclusions name their source
MIN_SUBJECTS = 2

_ID = re.compile(ID_REGEX)


@dataclass(frozen=True)
class Subject:
    """One subject: its ID and input files (``labels``/``brainmask`` may be absent)."""

    id: str
    t1w: Path
    labels: Path | None = None
    brainmask: Path | None = None


@dataclass(frozen=True)
class Pair:
    """``moving`` is registered onto ``fixed``."""

    moving: str
    fixed: str

    @property
    def id(self) -> str:
        return f"{self.moving}{PAIR_SEPARATOR}{self.fixed}"


def check_id(value: str, source: str | Path, what: str = "subject ID") -> str:
    """Return ``value`` if it is a safe ID, else raise one error naming it and ``source``."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise NirInputError(source, f"unsafe {what} {value!r}: IDs must match "
                                    f"{SUBJECT_ID_PATTERN} (letters, digits, '_' and '-')")
    return value


def _check_unique(ids: list[str], source: str | Path) -> None:
    seen: set[str] = set()
    for sid in ids:
        if sid in seen:
            raise NirInputError(source, f"subject ID {sid!r} appears more than once")
        seen.add(sid)


def _read_tsv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Column names and rows (stripped strings) of a tab-separated table."""
    if not path.is_file():
        raise NirInputError(path, "file does not exist")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
                for row in reader]
        columns = [c.strip() for c in reader.fieldnames or []]
    if not rows:
        raise NirInputError(path, "the table has no rows")
    return columns, rows


def _sheet_path(value: str, sheet: Path) -> Path | None:
    if not value or value.lower() in ("n/a", "na"):
        return None
    path = Path(value)
    return path if path.is_absolute() else sheet.parent / path


def read_sheet(path: str | Path, extra_columns: tuple[str, ...] = ()) -> list[Subject]:
    """Subjects from a TSV with columns ``subject``, ``t1w`` and optional ``labels``, ``brainmask``
    (and ``extra_columns``, participant data such as a group, read elsewhere).

    Relative file paths are taken relative to the sheet's folder.
    """
    sheet = Path(path)
    columns, rows = _read_tsv(sheet)
    missing = [c for c in ("subject", "t1w") if c not in columns]
    if missing:
        raise NirInputError(sheet, f"missing column(s) {', '.join(missing)} "
                                   f"(found: {', '.join(columns)})")
    allowed = (*SHEET_COLUMNS, *extra_columns)
    unknown = [c for c in columns if c not in allowed]
    if unknown:
        raise NirInputError(sheet, f"unknown column(s) {', '.join(unknown)} "
                                   f"(allowed: {', '.join(allowed)})")
    subjects = []
    for row in rows:
        sid = check_id(row["subject"], sheet)
        t1w = _sheet_path(row["t1w"], sheet)
        if t1w is None:
            raise NirInputError(sheet, f"subject {sid!r} has no t1w file")
        subjects.append(Subject(sid, t1w, _sheet_path(row.get("labels", ""), sheet),
                                _sheet_path(row.get("brainmask", ""), sheet)))
    _check_unique([s.id for s in subjects], sheet)
    return subjects


def _bids_t1w(root: Path, sid: str, pattern: str | None) -> Path:
    if pattern:
        return root / pattern.format(subject=sid)
    found = sorted((root / sid / "anat").glob("*_T1w.nii.gz"))
    if len(found) != 1:
        problem = "no *_T1w.nii.gz" if not found else f"{len(found)} *_T1w.nii.gz files"
        raise NirInputError(root / sid / "anat", f"{problem}; set bids.t1w to choose one")
    return found[0]


def discover_bids(root: str | Path, labels: str | None = None, t1w: str | None = None,
                  brainmask: str | None = None) -> list[Subject]:
    """Subjects ``sub-*`` of a BIDS root; ``labels``/``t1w``/``brainmask`` are patterns relative
    to the root with ``{subject}`` standing for the subject ID (e.g. ``sub-01``)."""
    root = Path(root)
    if not root.is_dir():
        raise NirInputError(root, "BIDS root is not a directory")
    ids = sorted(p.name for p in root.glob("sub-*") if p.is_dir())
    if not ids:
        raise NirInputError(root, "no sub-* folders in the BIDS root")
    subjects = []
    for sid in ids:
        check_id(sid, root)
        subjects.append(Subject(
            sid, _bids_t1w(root, sid, t1w),
            root / labels.format(subject=sid) if labels else None,
            root / brainmask.format(subject=sid) if brainmask else None))
    return subjects


def check_files(subjects: list[Subject], source: str | Path, require_labels: bool) -> None:
    """Raise for the first listed input file that does not exist (or missing labels)."""
    for s in subjects:
        if require_labels and s.labels is None:
            raise NirInputError(source, f"subject {s.id!r} has no labels file; the workflow "
                                        "evaluates label overlap and needs one per subject")
        for path in (s.t1w, s.labels, s.brainmask):
            if path is not None and not path.is_file():
                raise NirInputError(path, f"input file of subject {s.id!r} does not exist")


def check_suffix(subjects: list[Subject], suffix: str, source: str | Path) -> None:
    """Raise unless every image and label file of ``subjects`` ends with ``suffix``."""
    for s in subjects:
        for path in (s.t1w, s.labels):
            if path is not None and not path.name.endswith(suffix):
                raise NirInputError(path, f"input of subject {s.id!r} must be a {suffix} file "
                                          "(preprocessed inputs are copied as they are)")


def check_no_brainmask(subjects: list[Subject], source: str | Path) -> None:
    """Raise for the first subject with a brain mask: preprocessed inputs are copied unchanged,
    so the mask would be silently unused."""
    for s in subjects:
        if s.brainmask is not None:
            raise NirInputError(s.brainmask, f"brain mask of subject {s.id!r} (from {source}) "
                                             "would be unused with preprocessed: true, which "
                                             "copies the inputs unchanged; drop the mask or set "
                                             "preprocessed: false")


def select_subjects(subjects: list[Subject], include: list[str] | None,
                    source: str | Path) -> list[Subject]:
    """The subjects listed in ``include`` (in cohort order), or all when ``include`` is empty."""
    if not include:
        return subjects
    known = {s.id for s in subjects}
    for sid in include:
        if sid not in known:
            raise NirInputError(source,
                                f"subject {sid!r} listed in 'subjects' is not in the cohort")
    wanted = set(include)
    return [s for s in subjects if s.id in wanted]


def exclude_subjects(subjects: list[Subject], excluded: Mapping[str, str],
                     source: str | Path) -> list[Subject]:
    """``subjects`` less the ``excluded`` ones (ID -> reason), in cohort order; every excluded ID
    must be one of ``subjects`` (the cohort read from ``source``, after ``subjects``)."""
    known = {s.id for s in subjects}
    for sid in excluded:
        if sid not in known:
            raise NirInputError(EXCLUDE_KEY, f"subject {sid!r} is not a subject of the cohort "
                                             f"({source}, after the 'subjects' key)")
    kept = [s for s in subjects if s.id not in excluded]
    if excluded and len(kept) < MIN_SUBJECTS:
        raise NirInputError(EXCLUDE_KEY, f"excluding {len(excluded)} of {len(subjects)} "
                                         f"subjects leaves {len(kept)}; a study needs at least "
                                         f"{MIN_SUBJECTS}")
    return kept


def demo_ids(n_subjects: int) -> list[str]:
    """IDs of a synthetic cohort: ``sub-01`` … ``sub-NN`` (zero-padded to at least 2 digits)."""
    if n_subjects < 2:
        raise NirInputError(None, f"demo.n_subjects must be at least 2, got {n_subjects}")
    width = max(2, len(str(n_subjects)))
    return [f"sub-{i:0{width}d}" for i in range(1, n_subjects + 1)]


def _template_pairs(ids: list[str], template: str | None) -> list[Pair]:
    fixed = template or ids[0]
    if fixed not in ids:
        raise NirInputError(None, f"pairs.template {fixed!r} is not a subject of the cohort")
    return [Pair(m, fixed) for m in ids if m != fixed]


def _random_pairs(ids: list[str], k: int | None, seed: int) -> list[Pair]:
    candidates = [Pair(m, f) for m, f in permutations(ids, 2)]
    if k is None or not 1 <= k <= len(candidates):
        raise NirInputError(None, f"pairs.k must be between 1 and {len(candidates)} "
                                  f"(n(n-1) for {len(ids)} subjects), got {k}")
    chosen = np.random.default_rng(seed).choice(len(candidates), size=k, replace=False)
    return [candidates[i] for i in sorted(chosen)]


def read_pairs_file(path: str | Path, ids: list[str]) -> list[Pair]:
    """Pairs from a TSV with columns ``moving`` and ``fixed`` naming subjects of the cohort."""
    path = Path(path)
    columns, rows = _read_tsv(path)
    if "moving" not in columns or "fixed" not in columns:
        raise NirInputError(path, f"needs columns moving and fixed (found: {', '.join(columns)})")
    known = set(ids)
    pairs = []
    for row in rows:
        pair = Pair(check_id(row["moving"], path), check_id(row["fixed"], path))
        for sid in (pair.moving, pair.fixed):
            if sid not in known:
                raise NirInputError(path, f"subject {sid!r} of pair {pair.id} is not in the cohort")
        if pair.moving == pair.fixed:
            raise NirInputError(path, f"pair {pair.id} registers a subject onto itself")
        pairs.append(pair)
    return pairs


def make_pairs(ids: list[str], mode: str = "all", template: str | None = None,
               k: int | None = None, seed: int = 0, file: str | Path | None = None) -> list[Pair]:
    """The (moving, fixed) pairs to register: ``all`` ordered pairs (n(n-1)), every subject onto
    one ``template`` subject, ``random`` ``k`` distinct ordered pairs drawn with ``seed``, those
    listed in ``file``, or ``none``.  Subject IDs must not contain ``_to_``; pairs must be
    unique."""
    if len(ids) < 2:
        raise NirInputError(None, f"a cohort needs at least 2 subjects, got {len(ids)}")
    for sid in ids:
        if PAIR_SEPARATOR in sid:
            raise NirInputError(None, f"subject ID {sid!r} contains {PAIR_SEPARATOR!r}, the "
                                      "separator of pair IDs ({moving}_to_{fixed}); rename it")
    if mode == "none":  # no pairwise registrations (e.g. a template study)
        return []
    if mode == "all":
        pairs = [Pair(m, f) for m, f in permutations(ids, 2)]
    elif mode == "template":
        pairs = _template_pairs(ids, template)
    elif mode == "random":
        pairs = _random_pairs(ids, k, seed)
    elif mode == "file":
        if not file:
            raise NirInputError(None, "pairs.mode is 'file' but pairs.file is not set")
        pairs = read_pairs_file(file, ids)
    else:
        raise NirInputError(None, f"pairs.mode must be one of {', '.join(PAIR_MODES)}, "
                                  f"got {mode!r}")
    seen: dict[str, Pair] = {}
    for pair in pairs:
        if pair.id in seen:
            raise NirInputError(file, f"pair {pair.id!r} is listed twice")
        seen[pair.id] = pair
    return pairs


def demo_subject(sid: str, demo_dir: str | Path) -> Subject:
    """Where the synthetic cohort generator writes subject ``sid`` under ``demo_dir``."""
    anat = Path(demo_dir) / sid / "anat"
    return Subject(sid, anat / f"{sid}_T1w.nii.gz", anat / f"{sid}_dseg.nii.gz")


def sheet_design_columns(config: dict) -> tuple[str, ...]:
    """The group and covariate columns the sample sheet carries when the ``tbm`` section is on
    and names no separate participants table."""
    tbm = config.get("tbm") or {}
    if not tbm.get("enabled") or tbm.get("participants"):
        return ()
    return (tbm.get("group_column", "group"), *tbm.get("covariates", []))


def cohort_from_config(config: dict, demo_dir: str | Path,
                       excluded: Mapping[str, str] | None = None) -> tuple[list[Subject], str]:
    """The subjects named by a validated workflow config and where they came from.

    ``cohort`` (a sheet) or ``bids`` (a root) must list existing files with labels; without
    either, the synthetic demo cohort under ``demo_dir`` (files the workflow will create).
    ``excluded`` (ID -> reason, :func:`nir.study.exclusions.parse_exclusions`) are left out
    before their files are checked.
    """
    if "cohort" in config and "bids" in config:
        raise NirInputError(None, "set either 'cohort' or 'bids' in the config, not both")
    if "cohort" in config:
        subjects = read_sheet(config["cohort"], sheet_design_columns(config))
        source = str(config["cohort"])
    elif "bids" in config:
        bids = config["bids"]
        subjects = discover_bids(bids["root"], bids.get("labels"), bids.get("t1w"),
                                 bids.get("brainmask"))
        source = str(bids["root"])
    else:
        ids = demo_ids(int(config["demo"]["n_subjects"]))
        subjects = select_subjects([demo_subject(sid, demo_dir) for sid in ids],
                                   config.get("subjects"), "demo")
        return exclude_subjects(subjects, excluded or {}, "demo"), "demo"
    subjects = select_subjects(subjects, config.get("subjects"), source)
    subjects = exclude_subjects(subjects, excluded or {}, source)
    check_files(subjects, source, require_labels=True)
    return subjects, source
