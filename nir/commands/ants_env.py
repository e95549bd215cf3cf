"""``nir ants-env``: build the separate antspyx environment used by ``nir ants-syn``."""

from __future__ import annotations

import argparse
from pathlib import Path

from nir.baselines.ants_syn import ANTSPYX_REQUIREMENT, ENV_MARKER, create_env

HELP = ("Create a virtual environment holding antspyx (which pins numpy < 2.4 and scipy < 1.16, "
        f"so it stays apart from nir's). Writes VENV/{ENV_MARKER} when done.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``ants-env`` options."""
    parser.add_argument("--venv", required=True, type=Path, metavar="DIR",
                        help="folder of the environment to create")
    parser.add_argument("--requirement", default=ANTSPYX_REQUIREMENT,
                        help=f"pip requirement to install (default {ANTSPYX_REQUIREMENT})")


def run(args: argparse.Namespace) -> None:
    """Create the environment."""
    info = create_env(args.venv, args.requirement)
    print(f"nir ants-env: antspyx {info['antspyx']} in {args.venv}")
