"""The ``nir`` command line: one sub-command module per verb in :mod:`nir.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys

from nir import __version__
from nir.errors import NirInputError, NirRunError

COMMANDS = ("register", "apply", "jacobian", "preprocess", "demo", "evaluate", "tables",
            "figures", "ants-syn", "ants-env")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(prog="nir", description=__doc__)
    parser.add_argument("--version", action="version", version=f"nir {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"nir.commands.{name.replace('-', '_')}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; bad input exits with status 2, a failed external tool with 1, each with one
    line on stderr."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except NirInputError as exc:
        print(f"nir {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except NirRunError as exc:
        print(f"nir {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
