"""The one error type that bad user input raises."""

from __future__ import annotations

from pathlib import Path


class NirInputError(ValueError):
    """A user-supplied file or setting is unusable; the message names the file and the problem."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
