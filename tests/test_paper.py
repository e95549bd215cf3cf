"""The paper outputs: convergence records gathered from summaries, the ranking table with its
tests, the LaTeX tables, and figures drawn from those numbers."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba

from nir import cli
from nir.errors import NirInputError
from nir.evaluation.convergence import (
    convergence_curves,
    flattening,
    read_convergence,
    summary_key,
)
from nir.evaluation.figures import method_palette
from nir.evaluation.panel_figure import panels_figure, read_panels
from nir.evaluation.paper import panels_of_one_pair
from nir.evaluation.paper_figures import convergence_figure, ranking_figure
from nir.evaluation.ranking import aspect_rank, ranking_latex, ranking_markdown, ranking_table
from nir.evaluation.tables import (
    COLUMNS,
    comparison_frame,
    read_pairs,
    stats_table,
    summary_latex,
    summary_table,
    write_csv,
)

PAIRS = [f"sub-0{i}_to_sub-01" for i in range(2, 8)]
# method -> (Dice, folding %, SDlogJ, seconds, peak MB): each method is best on one aspect;
# hybrid and downsize fold alike, and SDlogJ decides between them
METHODS = {"hybrid": (0.80, 0.010, 0.20, 60.0, 900.0), "random": (0.70, 0.000, 0.30, 90.0, 950.0),
           "downsize": (0.75, 0.010, 0.10, 30.0, 1000.0),
           "minipatch": (0.72, 0.030, 0.05, 120.0, 800.0)}


def _rows(pair: str, method: str, stage: str, values: dict[str, float]) -> list[dict]:
    return [{"pair": pair, "fixed": "sub-01", "moving": pair[:6], "method": method,
             "stage": stage, "structure": "all", "label": -1, "metric": metric, "value": value,
             "device": "cpu"} for metric, value in values.items()]


@pytest.fixture()
def tables_dir(tmp_path: Path) -> Path:
    """pairs.csv of six pairs and four methods; pair i shifts every Dice by 0.01 i."""
    rows = []
    for i, pair in enumerate(PAIRS):
        for method, (dice, folding, sdlogj, seconds, mb) in METHODS.items():
            shift = 0.01 * i + (0.002 * i if method == "random" else 0.0)
            rows += _rows(pair, method, "before", {"mean_dice": 0.55 + 0.01 * i,
                                                   "folding_percent": 0.0})
            rows += _rows(pair, method, "after", {
                "mean_dice": dice + shift, "folding_percent": folding, "sdlogj": sdlogj,
                "seconds": seconds + i, "peak_rss_mb": mb, "peak_memory_mb": mb})
    folder = tmp_path / "tables"
    write_csv(pd.DataFrame(rows, columns=list(COLUMNS)), folder / "pairs.csv")
    return folder


def test_memory_is_ranked_on_gpu_peaks_for_cuda_runs(tables_dir: Path) -> None:
    comparison = _comparison(tables_dir)
    on_gpu = comparison["method"] == "random"
    comparison.loc[on_gpu, "device"] = "cuda:0"
    table = ranking_table(comparison).set_index("method")
    assert table.loc["random", "memory_measure"] == "GPU"
    assert table.loc["hybrid", "memory_measure"] == "CPU RSS"
    assert "memory measure" in ranking_markdown(ranking_table(comparison))


def _summary(root: Path, method: str, pair: str, dice: list[float]) -> Path:
    """A registration summary with records every 10 iterations (Dice as given)."""
    records = [{"iteration": 10 * k, "phase": "start" if k == 0 else "fine",
                "seconds": 2.0 * k, "mean_dice": d, "folding_percent": 0.001 * k}
               for k, d in enumerate(dice)]
    path = root / method / pair / f"{pair}_summary.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"seconds": 9.0, "convergence": {"every": 10,
                                                                "records": records}}))
    return path


def _comparison(tables_dir: Path) -> pd.DataFrame:
    return comparison_frame(read_pairs([tables_dir / "pairs.csv"]))


def test_records_are_read_per_method_and_pair_and_averaged(tmp_path: Path) -> None:
    paths = [_summary(tmp_path, "hybrid", PAIRS[0], [0.5, 0.7, 0.8]),
             _summary(tmp_path, "hybrid", PAIRS[1], [0.6, 0.7, 0.9]),
             _summary(tmp_path, "random", PAIRS[0], [0.5, 0.6])]
    untracked = tmp_path / "ants" / PAIRS[0] / f"{PAIRS[0]}_summary.json"
    untracked.parent.mkdir(parents=True)
    untracked.write_text(json.dumps({"seconds": 5.0}))
    records = read_convergence([*paths, untracked])
    assert len(records) == 8 and set(records["method"]) == {"hybrid", "random"}
    curves = convergence_curves(records).set_index(["method", "iteration"])
    assert curves.loc[("hybrid", 20), "dice_mean"] == pytest.approx(0.85)
    assert curves.loc[("hybrid", 20), "dice_sd"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert curves.loc[("hybrid", 20), "n_pairs"] == 2
    assert np.isnan(curves.loc[("random", 10), "dice_sd"])  # one pair: no spread
    with pytest.raises(NirInputError, match="METHOD/PAIR"):
        summary_key(tmp_path / "hybrid" / "x_summary.json")


def test_ranking_ranks_each_aspect_and_tests_against_the_best(tables_dir: Path) -> None:
    comparison = _comparison(tables_dir)
    table = ranking_table(comparison).set_index("method")
    assert "affine" not in table.index
    assert table["rank_accuracy"].to_dict() == {"hybrid": 1, "downsize": 2, "minipatch": 3,
                                                "random": 4}
    assert table["rank_regularity"].to_dict() == {"random": 1, "downsize": 2, "hybrid": 3,
                                                  "minipatch": 4}
    assert table.loc["downsize", "rank_time"] == 1
    assert table.loc["minipatch", "rank_memory"] == 1
    assert table.loc["hybrid", "mean_rank"] == pytest.approx((1 + 3 + 2 + 2) / 4)
    assert ranking_table(comparison)["method"].iloc[0] == "hybrid"  # best mean rank first
    tied = aspect_rank(pd.DataFrame({"a_mean": [1.0, 1.0, np.nan], "b_mean": [2.0, 2.0, 0.0]}),
                       ("a", "b"), higher=False)
    assert tied.tolist() == [1, 1, 3]  # exact ties share a rank; a missing value ranks last
    assert set(table["memory_measure"]) == {"CPU RSS"}
    stats = stats_table(comparison).set_index(["method_a", "method_b"])
    # hybrid is best; downsize sorts before it, so that test is stored as (downsize, hybrid)
    assert table.loc["downsize", "p_holm_vs_best"] == stats.loc[("downsize", "hybrid"), "p_holm"]
    assert table.loc["downsize", "dice_diff_vs_best"] == pytest.approx(-0.05)
    assert table.loc["random", "dice_diff_vs_best"] == stats.loc[("hybrid", "random"),
                                                                 "median_diff"]
    assert table.loc["hybrid", "dice_diff_vs_best"] == 0.0
    assert np.isnan(table.loc["hybrid", "p_holm_vs_best"])
    markdown = ranking_markdown(ranking_table(comparison))
    assert "| hybrid | 6 | 0.825 ± 0.019 |" in markdown


def _tabular_rows(tex: str) -> list[str]:
    return tex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()


@pytest.mark.parametrize("kind", ["ranking", "summary"])
def test_latex_tables_are_well_formed_booktabs(tables_dir: Path, kind: str,
                                               tmp_path: Path) -> None:
    comparison = _comparison(tables_dir)
    tex = (ranking_latex(ranking_table(comparison)) if kind == "ranking"
           else summary_latex(summary_table(comparison)))
    columns = len(re.search(r"\\begin\{tabular\}\{(\w+)\}", tex).group(1))
    lines = tex.splitlines()
    assert lines[1] == r"\toprule" and lines[3] == r"\midrule" and lines[-2] == r"\bottomrule"
    header = lines[2]
    assert header.count("&") == columns - 1 and header.endswith(r"\\")
    rows = _tabular_rows(tex)
    assert len(rows) == (4 if kind == "ranking" else 5)
    for row in rows:
        assert row.count("&") == columns - 1 and row.endswith(r"\\")
    assert not re.search(r"(?<!\\)[%_#]", tex) and "±" not in tex and "–" not in tex
    if shutil.which("pdflatex") is None:
        return
    document = tmp_path / "doc.tex"
    document.write_text("\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n"
                        f"{tex}\\end{{document}}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                           document.name], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:]


def test_figures_plot_the_records_and_ranks_in_the_run_colours(tables_dir: Path,
                                                               tmp_path: Path) -> None:
    comparison = _comparison(tables_dir)
    palette = method_palette(comparison["method"].unique().tolist())
    records = read_convergence([_summary(tmp_path, "hybrid", PAIRS[0], [0.5, 0.7, 0.8]),
                                _summary(tmp_path, "random", PAIRS[0], [0.5, 0.55, 0.6])])
    curves = convergence_curves(records)
    fig = convergence_figure(curves, palette)
    dice_vs_iteration = fig.axes[0]
    for line in dice_vs_iteration.get_lines():
        curve = curves[curves["method"] == line.get_label()]
        assert np.allclose(line.get_xdata(), curve["iteration"])
        assert np.allclose(line.get_ydata(), curve["dice_mean"])
        assert to_rgba(line.get_color()) == to_rgba(palette[line.get_label()])
    assert {line.get_label() for line in dice_vs_iteration.get_lines()} == {"hybrid", "random"}
    assert np.allclose(fig.axes[1].get_lines()[0].get_xdata(),
                       curves[curves["method"] == "hybrid"]["seconds"])

    ranking = ranking_table(comparison)
    radar = ranking_figure(ranking, palette).axes[0]
    for line, (_, row) in zip(radar.get_lines(), ranking.iterrows(), strict=True):
        ranks = [row[f"rank_{a}"] for a in ("accuracy", "regularity", "time", "memory")]
        assert np.allclose(line.get_ydata()[:4], len(ranking) + 1 - np.array(ranks))
        assert to_rgba(line.get_color()) == to_rgba(palette[row["method"]])


def test_paper_command_writes_every_table_and_figure(tables_dir: Path, tmp_path: Path) -> None:
    summaries = [_summary(tmp_path / "register", "hybrid", PAIRS[0], [0.5, 0.8])]
    out = tmp_path / "paper"
    assert cli.main(["paper", "--tables", str(tables_dir), "--summaries", *map(str, summaries),
                     "--out-dir", str(out)]) == 0
    for name in ("convergence.csv", "convergence_end.csv", "ranking.csv", "ranking.md",
                 "ranking.tex", "summary.tex"):
        assert (out / name).stat().st_size > 0
    for name in ("convergence", "ranking", "panels"):
        for ext in ("png", "svg", "pdf"):
            assert (out / f"{name}.{ext}").stat().st_size > 1000
    assert pd.read_csv(out / "convergence.csv")["mean_dice"].tolist() == [0.5, 0.8]
    unknown = [_summary(tmp_path / "register", "other", PAIRS[0], [0.5])]
    assert cli.main(["paper", "--tables", str(tables_dir), "--summaries", *map(str, unknown),
                     "--out-dir", str(out)]) == 2


def _slices(root: Path, method: str, pair: str, records: int) -> Path:
    """A slices file as nir register writes it (nir.engine.panels), of ``records`` records."""
    path = root / method / pair / f"{pair}_convergence.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(records)
    detj = 1 + 0.2 * rng.standard_normal((records, 12, 14))
    detj[-1, 3, 4] = -0.3  # one folded voxel in the last record
    np.savez_compressed(path, iteration=np.arange(records) * 10,
                        phase=np.array(["start"] + ["fine"] * (records - 1)),
                        mean_dice=np.linspace(0.5, 0.7, records),
                        folding_percent=np.linspace(0.0, 0.01, records), axis=np.asarray(2),
                        index=np.asarray(7), fixed=rng.random((12, 14)),
                        warped=rng.random((records, 12, 14)), detj=detj)
    return path


def test_panels_figure_shows_every_record_of_the_chosen_pair(tables_dir: Path,
                                                            tmp_path: Path) -> None:
    root = tmp_path / "register"
    summaries = [_summary(root, m, PAIRS[0], [0.5, 0.8]) for m in ("hybrid", "downsize")]
    panels = [_slices(root, "hybrid", PAIRS[0], 4), _slices(root, "downsize", PAIRS[0], 3),
              _slices(root, "hybrid", PAIRS[1], 2)]
    pair, chosen = panels_of_one_pair(panels)
    assert pair == sorted(PAIRS[:2])[0] and set(chosen) == {"hybrid", "downsize"}
    fig = panels_figure(chosen, pair, ["downsize", "hybrid"])
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 2 * (3 + 4)  # an image and a det J map per record
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "Dice 0.700\ndet J≤0 0.0100 %" in texts
    out = tmp_path / "paper"
    argv = ["paper", "--tables", str(tables_dir), "--summaries", *map(str, summaries),
            "--panels", *map(str, panels), "--out-dir", str(out)]
    assert cli.main([*argv, "--panel-pair", PAIRS[1]]) == 0
    assert (out / "panels.png").stat().st_size > 1000
    assert cli.main([*argv, "--panel-pair", "sub-09_to_sub-01"]) == 2
    broken = root / "ants" / PAIRS[0] / f"{PAIRS[0]}_convergence.npz"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not an npz")
    with pytest.raises(NirInputError, match="unreadable convergence slices"):
        read_panels(broken)


def test_flattening_reports_the_late_change_of_each_curve() -> None:
    records = pd.DataFrame({"method": ["a"] * 5, "pair": ["p"] * 5,
                            "iteration": [0, 25, 50, 75, 100], "phase": ["fine"] * 5,
                            "seconds": [0.0, 1, 2, 3, 4],
                            "mean_dice": [0.5, 0.7, 0.75, 0.78, 0.785],
                            "folding_percent": [0.0, 0.0, 0.001, 0.002, 0.004]})
    end = flattening(convergence_curves(records)).set_index("method")
    assert end.loc["a", "from_iteration"] == 75 and end.loc["a", "last_iteration"] == 100
    assert end.loc["a", "late_dice_gain"] == pytest.approx(0.005)
    assert end.loc["a", "late_folding_change"] == pytest.approx(0.002)
