"""Scheduler signals as errors, so that a killed job cleans up and exits non-zero.

SLURM sends SIGTERM when a job reaches its time limit or is cancelled (and SIGKILL after its
``KillWait``, 30 s by default); Ctrl-C sends SIGINT.  Python's default for SIGTERM ends the
process on the spot, leaving ``.{stem}.*`` temporary files beside the outputs and ``.ants-*``
folders.  Inside :func:`terminate_as_error` either signal raises :class:`TerminatedError` in the
main thread instead, so every ``finally`` on the way out runs: temporary files are removed, a
child process (ANTs) is killed, and the command line prints one line and exits 1.
:func:`nir.cli.main` runs every ``nir`` command inside it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from nir.errors import NirRunError

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TerminatedError(NirRunError):
    """The process received SIGTERM or SIGINT."""


def _raise_terminated(signum: int, _frame: object) -> None:
    for sig in SIGNALS:  # a second signal must not interrupt the clean-up
        signal.signal(sig, signal.SIG_IGN)
    raise TerminatedError(f"terminated by {signal.Signals(signum).name}; temporary files removed")


@contextmanager
def terminate_as_error() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into :class:`TerminatedError` for the duration of the block.

    Only the main thread can set signal handlers; elsewhere the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise_terminated) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
