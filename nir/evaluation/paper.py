"""The paper outputs of a run: convergence records and curves, the ranking table and chart.

From the directory written by ``nir tables`` (its ``pairs.csv``) and the registration summaries
holding convergence records, write into one folder ``convergence.csv`` (every record),
``ranking.{csv,md,tex}`` (:mod:`nir.evaluation.ranking`), ``summary.tex`` (the cohort
summary of ``nir tables``, so that the folder holds all a manuscript needs) and the
``convergence`` and ``ranking`` figures in every format of
:data:`nir.evaluation.figures.FORMATS`, coloured per method as the cohort figures are.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nir.errors import NirInputError
from nir.evaluation.convergence import convergence_curves, read_convergence
from nir.evaluation.figures import method_palette, save_figure
from nir.evaluation.paper_figures import convergence_figure, ranking_figure
from nir.evaluation.ranking import ranking_latex, ranking_markdown, ranking_table
from nir.evaluation.tables import comparison_frame, read_pairs, summary_latex, summary_table
from nir.spatial.io import write_csv, write_text

TABLES = ("convergence.csv", "ranking.csv", "ranking.md", "ranking.tex", "summary.tex")
FIGURES = ("convergence", "ranking")


def write_paper(tables_dir: str | Path, summaries: Sequence[str | Path],
                out_dir: str | Path) -> list[Path]:
    """Write the paper tables and figures into ``out_dir``; returns the files written."""
    pairs_csv = Path(tables_dir) / "pairs.csv"
    if not pairs_csv.exists():
        raise NirInputError(pairs_csv, "file does not exist (run 'nir tables' first)")
    comparison = comparison_frame(read_pairs([pairs_csv]))
    palette = method_palette(comparison["method"].unique().tolist())
    records = read_convergence(summaries)
    unknown = sorted(set(records["method"]) - set(palette))
    if unknown:
        raise NirInputError("--summaries", f"methods {unknown} have no rows in {pairs_csv}")
    ranking = ranking_table(comparison)
    out = Path(out_dir)
    write_csv(records, out / "convergence.csv")
    write_csv(ranking, out / "ranking.csv")
    write_text(ranking_markdown(ranking), out / "ranking.md")
    write_text(ranking_latex(ranking), out / "ranking.tex")
    write_text(summary_latex(summary_table(comparison)), out / "summary.tex")
    written = [out / name for name in TABLES]
    written += save_figure(convergence_figure(convergence_curves(records), palette), out,
                           "convergence")
    written += save_figure(ranking_figure(ranking, palette), out, "ranking")
    return written
