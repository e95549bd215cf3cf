"""The ``nir`` command line: one sub-command module per verb in :mod:`nir.commands`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from nir import __version__
from nir.allocator import retain_freed_memory
from nir.errors import NirInputError, NirRunError
from nir.termination import terminate_as_error

DESCRIPTION = ("Neural-field image registration (NIR) of brain MRI: register pairs, apply and "
               "score warps, preprocess scans, and build cohort tables and figures. "
               "`nir COMMAND --help` describes each command.")
COMMANDS = ("register", "apply", "jacobian", "preprocess", "demo", "evaluate", "tables",
            "figures", "paper", "ants-syn", "ants-env", "template")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered, or just the sub-command ``only``.

    Each sub-command module imports what it needs (torch, matplotlib, ...), so registering one
    verb spares a run of that verb the start-up cost of all the others.
    """
    parser = argparse.ArgumentParser(prog="nir", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"nir {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS if only is None else (only,):
        module = importlib.import_module(f"nir.commands.{name.replace('-', '_')}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; bad input exits with status 2, a failed external tool with 1, each with one
    line on stderr. Every command runs with SIGTERM and SIGINT turned into an error
    (:func:`nir.termination.terminate_as_error`): a killed command removes its temporary files
    and exits 1 with one line."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv and argv[0] in COMMANDS else None).parse_args(argv)
    try:
        with terminate_as_error():
            args.run(args)
    except NirInputError as exc:
        print(f"nir {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except NirRunError as exc:
        print(f"nir {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


def entry() -> None:
    """The ``nir`` executable: :func:`main`, then exit without the interpreter's teardown.

    Freed memory is kept for reuse first (:func:`nir.allocator.retain_freed_memory`).  Every
    output is complete when ``main`` returns (files closed and renamed into place); what
    is left is torch's module teardown, about 0.7 s per process, which a cohort pays once per
    job. An uncaught exception still ends the normal way, with its traceback.
    """
    retain_freed_memory()
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    entry()
