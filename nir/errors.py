"""The two error types the command line reports in one line: bad input and a failed tool."""

from __future__ import annotations

from pathlib import Path


class NirInputError(ValueError):
    """A user-supplied file or setting is unusable; the message names the file and the problem."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class NirRunError(RuntimeError):
    """A run failed: an external tool (ANTs) failed or was killed, or a fit diverged; the
    message says which run and how."""
