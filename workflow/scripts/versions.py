"""Snakemake script: the software versions this run's jobs use, for the report's About category.

Python, nir-cohort, and every distribution nir-cohort requires (its core dependencies and those of
its ``workflow`` extra, Snakemake among them), read with ``importlib.metadata`` in the job's own
environment, the one whose ``nir`` the shell jobs call. Written as ``versions.tsv`` and as an
HTML table (``versions.html``) that ``snakemake --report`` embeds.
"""

import html
import platform
import sys
from contextlib import redirect_stderr, redirect_stdout
from importlib import metadata

from packaging.requirements import Requirement

PROJECT = "nir-cohort"
EXTRAS = ("workflow",)  # the extras a workflow run uses ("test" is for development only)


def requirement_names(project: str = PROJECT, extras: tuple[str, ...] = EXTRAS) -> list[str]:
    """Distributions ``project`` requires: its core dependencies and those of ``extras``."""
    names: list[str] = []
    for text in metadata.requires(project) or []:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker is not None and not any(marker.evaluate({"extra": e}) for e in extras):
            continue
        if requirement.name not in names:
            names.append(requirement.name)
    return names


def torch_build() -> str:
    """``CUDA x.y`` or ``CPU``: which build of torch is installed (the version does not say)."""
    try:
        import torch
    except ImportError:
        return ""
    return f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU"


def version_rows() -> list[tuple[str, str, str]]:
    """(package, version, note) for Python, nir-cohort and each of its requirements."""
    rows = [("python", platform.python_version(), sys.executable)]
    for name in (PROJECT, *requirement_names()):
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "not installed"
        rows.append((name, version, torch_build() if name == "torch" else ""))
    return rows


def write_tsv(rows: list[tuple[str, str, str]], path: str) -> None:
    with open(path, "w") as stream:
        stream.write("package\tversion\tnote\n")
        stream.writelines("\t".join(row) + "\n" for row in rows)


def write_html(rows: list[tuple[str, str, str]], path: str) -> None:
    cells = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(value)}</td>" for value in row) + "</tr>"
        for row in rows
    )
    with open(path, "w") as stream:
        stream.write(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Software versions</title>"
            "<style>body{font-family:sans-serif}td,th{padding:2px 12px;text-align:left}</style>"
            "</head><body>\n<h3>Software versions used by this run's jobs</h3>\n<table>\n"
            "<tr><th>package</th><th>version</th><th>note</th></tr>\n"
            f"{cells}\n</table>\n</body></html>\n"
        )


if __name__ == "__main__":  # run by Snakemake's script directive
    sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
    with open(sm.log[0], "w") as log, redirect_stdout(log), redirect_stderr(log):
        table = version_rows()
        write_tsv(table, sm.output.tsv)
        write_html(table, sm.output.html)
        print("\n".join(f"{name} {version} {note}".rstrip() for name, version, note in table))
