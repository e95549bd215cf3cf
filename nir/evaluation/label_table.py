"""Label tables: the id -> structure name map of a label numbering other than FreeSurfer's aseg.

A table is read from either of two formats, told apart by the content (never the extension):

- a TSV whose header names the columns ``id`` and ``name`` (other columns are ignored);
- a FreeSurfer colour LUT (``FreeSurferColorLUT.txt``, neurite-oasis' ``seg35_labels.txt``):
  one ``id name R G B A`` line per label, whitespace-separated.

In both, blank lines and lines starting with ``#`` are skipped.  Ids are non-negative integers,
each given once; id 0 (background) may be listed and is never scored.  Any problem raises one
:class:`~nir.errors.NirInputError` naming the file, the line and what is wrong.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from nir.errors import NirInputError

LUT_FIELDS = 6  # id name R G B A
_INTEGER = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class LabelTable:
    """Structure names by label id, and the file they were read from."""

    names: dict[int, str]
    path: Path

    @property
    def structures(self) -> tuple[int, ...]:
        """The table's non-zero ids, ascending: the structures it scores by default."""
        return tuple(sorted(label for label in self.names if label != 0))


def _content_lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, text) of the lines that are neither blank nor ``#`` comments."""
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise NirInputError(path, "label table does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise NirInputError(path, f"label table is unreadable ({exc})") from exc
    return [(number, line) for number, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")]


def _label_id(value: str, path: Path, number: int) -> int:
    value = value.strip()
    if not _INTEGER.fullmatch(value):
        raise NirInputError(path, f"line {number}: id {value!r} is not an integer")
    label = int(value)
    if label < 0:
        raise NirInputError(path, f"line {number}: id {label} is negative")
    return label


def _tsv_entries(path: Path, lines: list[tuple[int, str]]) -> list[tuple[int, int, str]]:
    """(line, id, name) of a TSV table whose first content line is its header."""
    rows = list(csv.reader([line for _, line in lines], delimiter="\t"))
    header = [cell.strip().lower() for cell in rows[0]]
    id_col, name_col = header.index("id"), header.index("name")
    entries = []
    for (number, _), row in zip(lines[1:], rows[1:], strict=True):
        if len(row) <= max(id_col, name_col):
            raise NirInputError(path, f"line {number}: {len(row)} column(s), the header "
                                      f"has {len(header)}")
        name = row[name_col].strip()
        if not name:
            raise NirInputError(path, f"line {number}: empty name")
        entries.append((number, _label_id(row[id_col], path, number), name))
    return entries


def _lut_entries(path: Path, lines: list[tuple[int, str]]) -> list[tuple[int, int, str]]:
    """(line, id, name) of a FreeSurfer colour LUT."""
    entries = []
    for number, line in lines:
        fields = line.split()
        if len(fields) != LUT_FIELDS or not all(_INTEGER.fullmatch(f) for f in fields[2:]):
            raise NirInputError(path, f"line {number}: expected 'id name R G B A' (a colour "
                                      f"LUT line: integers but the name), got {line.strip()!r}")
        entries.append((number, _label_id(fields[0], path, number), fields[1]))
    return entries


def read_label_table(path: str | Path) -> LabelTable:
    """The label table in ``path`` (TSV with ``id``/``name`` header, or a FreeSurfer LUT)."""
    path = Path(path)
    lines = _content_lines(path)
    if not lines:
        raise NirInputError(path, "label table is empty (no labels)")
    header = {cell.strip().lower() for cell in lines[0][1].split("\t")}
    if {"id", "name"} <= header:
        entries = _tsv_entries(path, lines)
    elif _INTEGER.fullmatch(lines[0][1].split()[0]):
        entries = _lut_entries(path, lines)
    else:
        raise NirInputError(path, "neither a TSV with a header naming the columns 'id' and "
                                  "'name' (tab-separated) nor a FreeSurfer colour LUT "
                                  f"('id name R G B A' lines); line {lines[0][0]} is "
                                  f"{lines[0][1].strip()!r}")
    names: dict[int, str] = {}
    first_line: dict[int, int] = {}
    for number, label, name in entries:
        if label in names:
            raise NirInputError(path, f"id {label} appears twice (lines {first_line[label]} "
                                      f"and {number})")
        names[label] = name
        first_line[label] = number
    table = LabelTable(names, path)
    if not table.structures:
        raise NirInputError(path, "label table has no labels besides 0 (background)")
    return table
