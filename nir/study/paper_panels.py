"""The ``paper`` config section: which pair and methods the panels figure (Fig 5) shows."""

from __future__ import annotations

from collections.abc import Sequence

from nir.errors import NirInputError
from nir.study.cohort import Pair


def check_panel_methods(requested: Sequence[str], tracked: Sequence[str]) -> list[str]:
    """The methods of the panels figure: ``requested`` (default: every tracked method);
    NirInputError naming the config key for one that records no convergence."""
    untracked = [m for m in requested if m not in tracked]
    if untracked:
        raise NirInputError("config: paper.panel_methods",
                            f"{untracked} record no convergence (set track_every > 0 in their "
                            f"method); tracked methods: {', '.join(tracked) or 'none'}")
    return list(requested) or list(tracked)


def check_panel_pair(requested: str | None, pairs: Sequence[Pair]) -> str | None:
    """The pair of the panels figure: ``requested`` (default: the first pair, None without
    pairs); NirInputError naming the config key for a pair the run does not register."""
    ids = [p.id for p in pairs]
    if requested is None:
        return ids[0] if ids else None
    if requested not in ids:
        raise NirInputError("config: paper.panel_pair",
                            f"{requested!r} is not a pair of this run (pairs are "
                            f"MOVING_to_FIXED, e.g. {ids[0] if ids else 'none'})")
    return requested
