"""Cohort tables, figures and the QC panel on small synthetic evaluations."""

from __future__ import annotations

import math

import matplotlib.image
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from nir import cli
from nir.errors import NirInputError
from nir.evaluation.qc_panel import qc_panel, read_itk_displacement
from nir.evaluation.tables import (
    COLUMNS,
    comparison_frame,
    dsc30,
    holm,
    rank_biserial,
    read_pairs,
    stats_table,
    summary_table,
    write_csv,
    write_tables,
)

STRUCTURES = {17: "Left-Hippocampus", 53: "Right-Hippocampus", 16: "Brain-Stem"}


def _pair_rows(pair: str, method: str, stage: str, dice: dict[int, float],
               extra: dict[str, float]) -> list[dict]:
    base = {"pair": pair, "fixed": pair[:6], "moving": pair[-6:], "method": method,
            "stage": stage, "device": "cpu"}
    rows = [{**base, "structure": STRUCTURES[k], "label": k, "metric": m, "value": v}
            for k, d in dice.items() for m, v in (("dice", d), ("hd95", 3.0))]
    rows.append({**base, "structure": "all", "label": -1, "metric": "mean_dice",
                 "value": float(np.mean(list(dice.values())))})
    rows += [{**base, "structure": "all", "label": -1, "metric": m, "value": v}
             for m, v in extra.items()]
    return rows


def _pair_csv(tmp_path, pair: str, method: str, before: float, after: float,
              seconds: float = 60.0):
    """One evaluation CSV whose per-structure Dice all equal ``before``/``after`` except the
    right hippocampus, which is 0.1 higher."""
    rows = []
    for stage, d, extra in (("before", before, {"folding_percent": 0.0, "sdlogj": 0.0}),
                            ("after", after, {"folding_percent": 0.01, "sdlogj": 0.05,
                                              "seconds": seconds, "peak_rss_mb": 500.0})):
        rows += _pair_rows(pair, method, stage, {17: d, 53: d + 0.1, 16: d}, extra)
    path = tmp_path / f"{pair}_{method}.csv"
    write_csv(pd.DataFrame(rows, columns=list(COLUMNS)), path)
    return path


@pytest.fixture()
def cohort(tmp_path):
    """Ten pairs, methods nir and fast; both record the same affine 'before' stage."""
    paths = []
    for i in range(10):
        pair = f"sub-{i:02d}_to_sub-{i + 1:02d}"
        before = 0.40 + 0.02 * i
        paths.append(_pair_csv(tmp_path, pair, "nir", before, before + 0.20, seconds=100.0 + i))
        paths.append(_pair_csv(tmp_path, pair, "fast", before, before + 0.10, seconds=10.0 + i))
    return paths


def test_dsc30_is_mean_of_worst_three_of_ten():
    values = [0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 1.0, 0.6, 0.8, 0.4]
    assert dsc30(values) == pytest.approx(0.2)  # mean of 0.1, 0.2, 0.3
    assert dsc30([0.5]) == 0.5
    assert math.isnan(dsc30([]))


def test_rank_biserial_and_holm_by_hand():
    assert rank_biserial(np.array([1.0, -2.0, 3.0, 0.0])) == pytest.approx(1 / 3)
    np.testing.assert_allclose(holm([0.01, 0.04, math.nan, 0.03]), [0.03, 0.06, math.nan, 0.06])


def test_summary_affine_is_deduplicated_before_stage(cohort):
    pairs = read_pairs(cohort)
    comparison = comparison_frame(pairs)
    summary = summary_table(comparison).set_index("method")
    assert list(summary.index) == ["affine", "fast", "nir"]
    assert summary.loc["affine", "stage"] == "before"
    assert summary.loc["affine", "n_pairs"] == 10  # once per pair, though two methods give it
    before = pairs[(pairs["stage"] == "before") & (pairs["metric"] == "mean_dice")
                   & (pairs["method"] == "nir")]["value"]
    assert summary.loc["affine", "mean_dice_mean"] == pytest.approx(before.mean())
    assert summary.loc["affine", "mean_dice_sd"] == pytest.approx(before.std(ddof=1))
    assert summary.loc["nir", "mean_dice_mean"] == pytest.approx(before.mean() + 0.20)
    # worst three pairs of nir after: mean_dice (0.40 + 0.02 i + 0.20 + 0.0333) for i = 0, 1, 2
    assert summary.loc["nir", "dsc30"] == pytest.approx(0.62 + 0.1 / 3)
    assert summary.loc["fast", "seconds_mean"] == pytest.approx(14.5)
    assert math.isnan(summary.loc["affine", "seconds_mean"])
    assert summary.loc["affine", "folding_percent_mean"] == 0.0


def test_stats_paired_wilcoxon(cohort):
    table = stats_table(comparison_frame(read_pairs(cohort)))
    assert len(table) == 3  # affine-fast, affine-nir, fast-nir
    row = table.set_index(["method_a", "method_b"]).loc[("fast", "nir")]
    assert row["n"] == 10
    assert row["median_diff"] == pytest.approx(0.10)
    assert row["rank_biserial"] == pytest.approx(1.0)
    assert row["p_value"] == pytest.approx(2 / 2**10)  # exact two-sided p, all 10 positive
    assert row["note"] == "" or pd.isna(row["note"])


def test_stats_degenerate_cases(tmp_path):
    same = [_pair_csv(tmp_path, "sub-01_to_sub-02", "nir", 0.5, 0.5)]
    table = stats_table(comparison_frame(read_pairs(same)))
    assert math.isnan(table.loc[0, "p_value"])
    assert table.loc[0, "note"] == "fewer than 2 paired observations"
    same.append(_pair_csv(tmp_path, "sub-02_to_sub-03", "nir", 0.6, 0.6))
    table = stats_table(comparison_frame(read_pairs(same)))
    assert math.isnan(table.loc[0, "p_value"])
    assert table.loc[0, "note"] == "all differences are zero"


def _run(monkeypatch, argv):
    monkeypatch.setattr(cli, "COMMANDS", ("tables", "figures"))
    return cli.main([str(a) for a in argv])


def test_tables_cli_writes_every_table(cohort, tmp_path, monkeypatch):
    out = tmp_path / "tables"
    assert _run(monkeypatch, ["tables", "--pairs", *cohort, "--out-dir", out]) == 0
    pairs = pd.read_csv(out / "pairs.csv")
    assert len(pairs) == sum(len(pd.read_csv(p)) for p in cohort)
    per_structure = pd.read_csv(out / "per_structure.csv").set_index(["method", "structure"])
    assert set(per_structure.index.get_level_values("structure")) == {"Hippocampus", "Brain-Stem"}
    nir_before = 0.40 + 0.02 * np.arange(10) + 0.20
    assert per_structure.loc[("nir", "Hippocampus"), "mean_dice"] == pytest.approx(
        nir_before.mean() + 0.05)  # left and right (+0.1) averaged
    markdown = (out / "summary.md").read_text()
    assert "| affine | before | 10 |" in markdown and " ± " in markdown
    latex = (out / "summary.tex").read_text()
    assert r"\begin{tabular}" in latex and r"$\pm$" in latex
    assert len(pd.read_csv(out / "stats.csv")) == 3


def test_read_pairs_parses_the_joined_files_as_each_file_alone(cohort, tmp_path):
    """The one-parse path (every file in nir evaluate's layout) gives the rows, types and
    order of parsing each file; pairs.csv is their concatenation; a faulty file is named."""
    one_by_one = pd.concat([pd.read_csv(p, keep_default_na=False, na_values=[""])
                            for p in cohort], ignore_index=True)
    joined = read_pairs(cohort)
    pd.testing.assert_frame_equal(joined, one_by_one, check_dtype=False)
    assert joined["label"].dtype.kind == "i" and joined["value"].dtype.kind == "f"
    reordered = tmp_path / "reordered.csv"  # other column order: parsed on its own
    pd.read_csv(cohort[0])[list(reversed(COLUMNS))].to_csv(reordered, index=False)
    pd.testing.assert_frame_equal(read_pairs([reordered, *cohort[1:]]), joined)
    out = write_tables(cohort, tmp_path / "tables")["pairs.csv"]
    assert out.read_text() == ",".join(COLUMNS) + "\n" + "".join(
        p.read_text().split("\n", 1)[1] for p in cohort)
    faulty = cohort[7]
    faulty.write_text(faulty.read_text() + "x,y,z,nir,after,all,-1,dice,0.5,cpu,extra\n")
    with pytest.raises(NirInputError, match=str(faulty)):
        read_pairs(cohort)


def test_tables_cli_rejects_a_csv_without_the_columns(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("pair,value\nx,1\n")
    assert _run(monkeypatch, ["tables", "--pairs", bad, "--out-dir", tmp_path / "t"]) == 2
    assert str(bad) in capsys.readouterr().err
    assert not (tmp_path / "t" / "summary.csv").exists()


def _assert_real_png(path, min_bytes=5_000):
    assert path.stat().st_size > min_bytes
    pixels = matplotlib.image.imread(path)
    assert pixels[..., :3].std() > 0.02  # not a uniform image


def test_figures_cli_writes_png_svg_and_pdf(cohort, tmp_path, monkeypatch):
    tables, figures = tmp_path / "tables", tmp_path / "figures"
    assert _run(monkeypatch, ["tables", "--pairs", *cohort, "--out-dir", tables]) == 0
    assert _run(monkeypatch, ["figures", "--tables", tables, "--out-dir", figures]) == 0
    for name in ("dice_per_structure", "dice_vs_folding", "runtime"):
        _assert_real_png(figures / f"{name}.png")
        svg = (figures / f"{name}.svg").read_text()
        assert "<svg" in svg and len(svg) > 5_000
        assert (figures / f"{name}.pdf").read_bytes().startswith(b"%PDF")
    assert not list(figures.glob(".*"))  # no temporaries left


def test_figures_cli_without_inputs_is_an_input_error(monkeypatch, capsys):
    assert _run(monkeypatch, ["figures"]) == 2
    assert "--tables" in capsys.readouterr().err


def _itk_warp(disp_vox: np.ndarray, affine: np.ndarray, path):
    """Write a voxel displacement as an ITK warp: 5D (X, Y, Z, 1, 3) LPS mm."""
    lps = (disp_vox @ affine[:3, :3].T) * np.array([-1.0, -1.0, 1.0])
    img = nib.Nifti1Image(lps[:, :, :, None, :].astype(np.float32), affine)
    img.header.set_intent("vector")
    nib.save(img, str(path))
    return path


def test_itk_warp_round_trip_in_an_oblique_lia_frame(tmp_path):
    affine = np.array([[-1.0, 0, 0, 80], [0, 0, 1.5, -127], [0, -1.2, 0, 97], [0, 0, 0, 1]])
    disp = np.random.default_rng(1).normal(size=(5, 6, 7, 3))
    read, read_affine = read_itk_displacement(_itk_warp(disp, affine, tmp_path / "w.nii.gz"))
    np.testing.assert_allclose(read, disp, atol=1e-5)
    np.testing.assert_allclose(read_affine, affine)


def test_qc_panel_draws_every_panel(tmp_path):
    affine = np.array([[-1.0, 0, 0, 20], [0, 0, 1, -20], [0, -1, 0, 20], [0, 0, 0, 1]])
    shape = (40, 36, 32)
    ii, jj, kk = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    blob = ((ii - 20) ** 2 / 150 + (jj - 18) ** 2 / 100 + (kk - 16) ** 2 / 90 <= 1) * 100.0
    moved = ((ii - 22) ** 2 / 150 + (jj - 18) ** 2 / 100 + (kk - 16) ** 2 / 90 <= 1) * 100.0
    disp = np.zeros((*shape, 3))
    disp[..., 0] = 2.0 * np.exp(-((ii - 20) ** 2 + (kk - 16) ** 2) / 60)
    files = {}
    for name, data in (("fixed", blob + ii), ("moving", moved + ii), ("warped", blob + ii)):
        files[name] = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data.astype(np.float32), affine), str(files[name]))
    warp = _itk_warp(disp, affine, tmp_path / "warp.nii.gz")
    out = qc_panel(files["fixed"], files["moving"], files["warped"], None, warp,
                   tmp_path / "qc" / "pair.png")
    _assert_real_png(out, min_bytes=20_000)
    height, width = matplotlib.image.imread(out).shape[:2]
    assert width > 1.5 * height  # the 2 x 4 layout
