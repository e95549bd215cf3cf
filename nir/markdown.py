"""GitHub Markdown tables: the one writer behind every table the package prints."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table of ``header`` over ``rows`` of cells (no newlines)."""
    return [_row(header), "|" + "---|" * len(header), *(_row(cells) for cells in rows)]
