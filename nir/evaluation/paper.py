"""The paper outputs of a run: convergence records and curves, the ranking table and chart,
and the Fig 5 panels.

From the directory written by ``nir tables`` (its ``pairs.csv``), the registration summaries
holding convergence records and their slices files, write into one folder ``convergence.csv``
(every record), ``convergence_end.csv`` (how flat each curve ends,
:func:`nir.evaluation.convergence.flattening`), ``ranking.{csv,md,tex}``
(:mod:`nir.evaluation.ranking`), ``summary.tex`` (the cohort summary of ``nir tables``, so
that the folder holds all a manuscript needs) and the ``convergence``, ``ranking`` and
``panels`` (:mod:`nir.evaluation.panel_figure`) figures in every format of
:data:`nir.evaluation.figures.FORMATS`, coloured per method as the cohort figures are.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nir.errors import NirInputError
from nir.evaluation.convergence import convergence_curves, flattening, read_convergence
from nir.evaluation.figures import method_palette, save_figure
from nir.evaluation.panel_figure import panel_key, panels_figure, read_panels
from nir.evaluation.paper_figures import convergence_figure, ranking_figure
from nir.evaluation.ranking import ranking_latex, ranking_markdown, ranking_table
from nir.evaluation.tables import comparison_frame, read_pairs, summary_latex, summary_table
from nir.spatial.io import write_csv, write_text

TABLES = ("convergence.csv", "convergence_end.csv", "ranking.csv", "ranking.md", "ranking.tex",
          "summary.tex")
FIGURES = ("convergence", "ranking", "panels")


def panels_of_one_pair(paths: Sequence[str | Path], pair: str | None = None
                       ) -> tuple[str, dict[str, dict]]:
    """(pair, {method: slices}) of the slices files of ``pair`` (default: the first pair in
    sorted order); NirInputError if ``pair`` has none."""
    keyed = {panel_key(path): path for path in paths}
    pairs = sorted({p for _, p in keyed})
    if pair is None:
        pair = pairs[0] if pairs else ""
    elif pair not in pairs:
        raise NirInputError("--panel-pair", f"no convergence slices of pair {pair!r} among "
                                            f"--panels (pairs: {', '.join(pairs) or 'none'})")
    return pair, {m: read_panels(path) for (m, p), path in sorted(keyed.items()) if p == pair}


def write_paper(tables_dir: str | Path, summaries: Sequence[str | Path],
                out_dir: str | Path, panels: Sequence[str | Path] = (),
                panel_pair: str | None = None) -> list[Path]:
    """Write the paper tables and figures into ``out_dir``; returns the files written.

    ``panels`` are slices files (``METHOD/PAIR/PAIR_convergence.npz``); the Fig 5 figure
    shows those of ``panel_pair`` (default: the first pair)."""
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
    write_csv(flattening(convergence_curves(records)), out / "convergence_end.csv")
    write_csv(ranking, out / "ranking.csv")
    write_text(ranking_markdown(ranking), out / "ranking.md")
    write_text(ranking_latex(ranking), out / "ranking.tex")
    write_text(summary_latex(summary_table(comparison)), out / "summary.tex")
    written = [out / name for name in TABLES]
    written += save_figure(convergence_figure(convergence_curves(records), palette), out,
                           "convergence")
    written += save_figure(ranking_figure(ranking, palette), out, "ranking")
    pair, slices = panels_of_one_pair(panels, panel_pair)
    written += save_figure(panels_figure(slices, pair, [m for m in palette if m in slices]),
                           out, "panels")
    return written
