"""Subjects excluded from a study by the config's top-level ``exclude`` list, each with a reason.

``exclude`` is a list of ``{subject: ID, reason: TEXT}`` entries or a mapping ``ID: reason``.
An excluded subject leaves the cohort before any job is planned
(:func:`nir.study.cohort.exclude_subjects`): it is neither preprocessed nor registered (pairs,
template rounds), and the group statistics never see it; the report lists it with its reason.
Every problem is one NirInputError naming ``config: exclude``: an empty reason, a subject
listed twice, an excluded subject named by another key (``pairs.template``,
``template.initial``), and (in :mod:`nir.study.cohort`) an ID that is not a subject of the
cohort or fewer than 2 subjects left.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nir.errors import NirInputError
from nir.study.cohort import EXCLUDE_KEY as KEY
from nir.study.cohort import check_id

# the config keys that name one subject, which must not be an excluded one
SUBJECT_KEYS = (("pairs", "template"), ("template", "initial"))


def parse_exclusions(value: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None
                     ) -> dict[str, str]:
    """``{subject: reason}`` from the config's ``exclude`` value (a list of ``{subject,
    reason}`` entries or a mapping ``ID: reason``), in the order given."""
    entries = value.items() if isinstance(value, Mapping) else \
        [(entry.get("subject"), entry.get("reason")) for entry in value or ()]
    excluded: dict[str, str] = {}
    for sid, reason in entries:
        sid = check_id(str(sid) if sid is not None else "", KEY)
        text = str(reason or "").strip()
        if not text:
            raise NirInputError(KEY, f"subject {sid!r} has an empty reason: say why it is "
                                     "excluded (the report lists it)")
        if sid in excluded:
            raise NirInputError(KEY, f"subject {sid!r} is listed twice")
        excluded[sid] = text
    return excluded


def check_not_named(config: Mapping[str, Any], excluded: Mapping[str, str]) -> None:
    """Raise if a config key that names one subject names an excluded one."""
    for section, key in SUBJECT_KEYS:
        sid = (config.get(section) or {}).get(key)
        if sid in excluded:
            raise NirInputError(KEY, f"subject {sid!r} is excluded ({excluded[sid]}) but "
                                     f"{section}.{key} names it")
