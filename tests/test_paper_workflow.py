"""config/paper.yaml's methods on the reduced demo: the convergence records exist, Dice rises
over them, and the paper tables and figures are drawn from those records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.test_workflow import TEST_CONFIG, snakemake

pytestmark = pytest.mark.slow

PAPER_CONFIG = Path(__file__).resolve().parents[1] / "config" / "paper.yaml"
# one method per sampler, the modes alternating; 30 iterations, a record every 10
KEPT = ("random-displacement", "downsize-velocity", "minipatch-displacement", "hybrid-velocity")
ITERATIONS, TRACK_EVERY = 30, 10


def reduced_paper_config(path: Path) -> None:
    """paper.yaml's methods with fewer iterations on the reduced demo of config/test.yaml,
    its subjects on one grid (no pose, so no preprocessing) and deformed more, so that there
    is Dice to gain within a few iterations."""
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config["demo"].update(rotation_deg=0.0, translation_mm=0.0, scale=0.0, deformation_mm=8.0)
    config["preprocessed"] = True
    config["evaluation"]["qc_pairs"] = 0
    methods = yaml.safe_load(PAPER_CONFIG.read_text())["methods"]
    config["methods"] = {}
    for name in KEPT:
        spec = {**methods[name], "track_every": TRACK_EVERY, "iterations": ITERATIONS}
        if spec["sampler"] == "hybrid":
            spec.update(coarse_iterations=TRACK_EVERY, iterations=ITERATIONS - TRACK_EVERY)
        config["methods"][name] = spec
    path.write_text(yaml.safe_dump(config))


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("paper")
    config = workdir / "paper.yaml"
    reduced_paper_config(config)
    snakemake(workdir, config)
    snakemake(workdir, config, "--report", str(workdir / "results" / "report.html"))
    return workdir / "results"


def test_paper_config_is_the_factorial() -> None:
    methods = yaml.safe_load(PAPER_CONFIG.read_text())["methods"]
    assert methods.pop("nir-default") == {"track_every": 50}  # the package's own, for reference
    assert all(m["preset"] == "paper" for m in methods.values())  # the continuous field
    grid = {(m["sampler"], m["mode"]) for m in methods.values()}
    assert grid == {(s, f) for s in ("random", "downsize", "minipatch", "hybrid")
                    for f in ("displacement", "velocity")}
    assert all(m["track_every"] > 0 for m in methods.values())
    budgets = {m.get("coarse_iterations", 0) * (m["sampler"] == "hybrid") + m["iterations"]
               for m in methods.values()}
    assert len(budgets) == 1  # every method gets the same number of iterations


def test_records_exist_and_dice_rises(paper_run: Path) -> None:
    """Dice rises on every pair with the structured samplers; with random points (the paper's
    baseline: global NCC on scattered points, whose first steps jolt the field) on average over
    the pairs, as it can start by losing Dice (0.752 -> 0.738 at iteration 10 on one pair)."""
    summaries = sorted((paper_run / "register").glob("*/*/*_summary.json"))
    assert len(summaries) == 2 * len(KEPT)
    gains: dict[str, list[float]] = {method: [] for method in KEPT}
    for path in summaries:
        records = json.loads(path.read_text())["convergence"]["records"]
        iterations = [r["iteration"] for r in records]
        assert iterations == list(range(0, ITERATIONS + 1, TRACK_EVERY)), path
        method = path.parent.parent.name
        gains[method].append(records[-1]["mean_dice"] - records[0]["mean_dice"])
        if not method.startswith("random"):
            assert gains[method][-1] > 0.005, path
        # the first record is the affine start, the last the evaluated result
        metrics = pd.read_csv(paper_run / "metrics" / path.parent.parent.name
                              / f"{path.parent.name}.csv")
        mean = metrics[metrics["metric"] == "mean_dice"].set_index("stage")["value"]
        assert records[0]["mean_dice"] == pytest.approx(mean["before"], abs=1e-6)
        assert records[-1]["mean_dice"] == pytest.approx(mean["after"], abs=1e-6)
    assert all(sum(pair_gains) > 0 for pair_gains in gains.values()), gains


def test_paper_tables_and_figures_come_from_the_records(paper_run: Path) -> None:
    paper = paper_run / "paper"
    records = pd.read_csv(paper / "convergence.csv")
    assert set(records["method"]) == set(KEPT) and records["pair"].nunique() == 2
    for _, row in records.iterrows():  # every row is a record of that run's summary
        summary = paper_run / "register" / row["method"] / row["pair"] / \
            f"{row['pair']}_summary.json"
        stored = json.loads(summary.read_text())["convergence"]["records"]
        assert row["mean_dice"] in [r["mean_dice"] for r in stored
                                    if r["iteration"] == row["iteration"]]
    ranking = pd.read_csv(paper / "ranking.csv").set_index("method")
    summary = pd.read_csv(paper_run / "tables" / "summary.csv").set_index("method")
    assert set(ranking.index) == set(KEPT)
    for method in KEPT:
        assert ranking.loc[method, "mean_dice_mean"] == pytest.approx(
            summary.loc[method, "mean_dice_mean"])
    assert (paper / "ranking.tex").read_text().count(r"\\") == len(KEPT) + 1
    assert (paper / "summary.tex").read_text() == (paper_run / "tables" / "summary.tex").read_text()
    for name in ("convergence", "ranking"):
        for ext in ("png", "svg", "pdf"):
            assert (paper / f"{name}.{ext}").stat().st_size > 1000
    for ext in ("png", "svg", "pdf"):
        assert (paper_run / "figures" / f"runtime.{ext}").stat().st_size > 1000
    report = (paper_run / "report.html").read_text(errors="replace")
    assert "Paper" in report and "convergence.png" in report and "ranking.tex" in report
