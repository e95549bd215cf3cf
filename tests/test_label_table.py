"""Label tables (``--label-table``, ``evaluation.label_table``): reading both formats, every bad
input as one error naming the file, names and scored labels in ``nir evaluate``, ``nir tables``
and ``nir figures``, the config-time checks, and a real pair relabelled to another numbering."""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from types import SimpleNamespace

import jinja2
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from nir import cli
from nir.errors import NirInputError
from nir.evaluation.label_table import read_label_table
from nir.evaluation.labels import (
    ASEG_STRUCTURES,
    engine_label_set,
    freesurfer_numbered,
    label_name,
    parse_label_set,
)
from nir.study.label_config import LabelConfig, label_config

REPO = Path(__file__).resolve().parents[1]
# a small numbering of its own: 1/2 the hippocampi, 3 the brain stem, 4 never present
NAMES = {1: "Left-Hippocampus", 2: "Right-Hippocampus", 3: "Brain-Stem", 4: "Left-vessel"}
TSV = "# hippocampi and brain stem\nid\tname\n" + "".join(f"{i}\t{n}\n" for i, n in NAMES.items())
LUT = ("#No. Label Name:     R   G   B   A\n\n  0  Unknown  0 0 0 0\n"
       + "".join(f"{i:3d}  {n:<20} 220 216 20 0\n" for i, n in NAMES.items()))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _save(array: np.ndarray, path: Path, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(np.asarray(array, np.int16), np.eye(4) if affine is None
                             else affine), str(path))
    return path


@pytest.fixture()
def pair(tmp_path: Path) -> dict[str, Path]:
    """Fixed and moving label maps in the numbering of NAMES: the left hippocampus overlaps by
    half, the right one and the brain stem fully; label 4 occurs in neither."""
    fixed = np.zeros((16, 16, 8), np.int16)
    fixed[2:8, 2:8, 2:6] = 1
    fixed[8:14, 2:8, 2:6] = 2
    fixed[2:14, 12:15, 2:6] = 3
    moving = fixed.copy()
    moving[2:8, 2:8, 2:6] = 0
    moving[2:8, 5:11, 2:6] = 1   # shifted by 3 voxels: Dice 0.5
    moving[2:14, 12:15, 2:6] = 3
    return {"fl": _save(fixed, tmp_path / "fixed.nii.gz"),
            "ml": _save(moving, tmp_path / "moving.nii.gz"), "dir": tmp_path}


def _nir(monkeypatch, *argv) -> int:
    monkeypatch.setattr(cli, "COMMANDS", ("evaluate", "tables", "figures"))
    return cli.main([str(a) for a in argv])


def _evaluate(monkeypatch, files: dict[str, Path], out: Path, *extra) -> int:
    """``nir evaluate`` of the affine-only pair (warped = moving)."""
    return _nir(monkeypatch, "evaluate", "--fixed-labels", files["fl"], "--moving-labels",
                files["ml"], "--warped-labels", files["ml"], "--pair", "b_to_a", "--method",
                "affine", "--out", out, *extra)


# --- reading ----------------------------------------------------------------------------------

def test_tsv_and_lut_read_alike_whatever_the_extension(tmp_path: Path) -> None:
    tsv = read_label_table(_write(tmp_path / "names.txt", TSV))  # a TSV named .txt
    lut = read_label_table(_write(tmp_path / "lut.tsv", LUT))    # a LUT named .tsv
    assert tsv.names == NAMES
    assert lut.names == {0: "Unknown", **NAMES}
    assert tsv.structures == lut.structures == (1, 2, 3, 4)  # 0 is never scored


BAD_TABLES = {
    "duplicate id": ("id\tname\n1\tA\n2\tB\n1\tC\n", "id 1 appears twice (lines 2 and 4)"),
    "non-integer id": ("id\tname\n1\tA\n2.5\tB\n", "line 3: id '2.5' is not an integer"),
    "negative id": ("id\tname\n-3\tA\n", "line 2: id -3 is negative"),
    "empty": ("# nothing but a comment\n\n", "label table is empty"),
    "header only": ("id\tname\n", "no labels besides 0"),
    "only background": ("0  Unknown  0 0 0 0\n", "no labels besides 0"),
    "empty name": ("id\tname\n1\t \n", "line 2: empty name"),
    "short row": ("id\tname\textra\n1\n", "line 2: 1 column(s)"),
    "malformed LUT line": ("0 Unknown 0 0 0 0\n17 Left-Hippocampus 220 216\n",
                           "line 2: expected 'id name R G B A'"),
    "LUT colour not a number": ("17 Left-Hippocampus 220 216 x 0\n",
                                "line 1: expected 'id name R G B A'"),
    "neither format": ("label,name\n1,A\n", "neither a TSV"),
}


@pytest.mark.parametrize("case", BAD_TABLES)
def test_bad_table_is_one_error_naming_the_file(case, pair, monkeypatch, capsys) -> None:
    text, problem = BAD_TABLES[case]
    table = _write(pair["dir"] / "bad table.txt", text)
    out = pair["dir"] / "pair.csv"
    assert _evaluate(monkeypatch, pair, out, "--label-table", table) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"nir evaluate: error: {table}: ") and problem in err[0], err
    assert not out.exists()


def test_missing_table_is_named(tmp_path: Path) -> None:
    with pytest.raises(NirInputError, match="does not exist") as info:
        read_label_table(tmp_path / "absent.tsv")
    assert info.value.path == str(tmp_path / "absent.tsv")


def test_oasis_table_is_seg35(tmp_path: Path) -> None:
    table = read_label_table(REPO / "config" / "oasis_seg35.tsv")
    assert table.structures == tuple(range(1, 36))
    assert table.names[1] == "Left-Cerebral-White-Matter"
    assert table.names[2] == "Left-Cerebral-Cortex"
    assert table.names[13] == "Brain-Stem" and table.names[35] == "Right-choroid-plexus"
    lefts = [n for n in table.names.values() if n.startswith("Left-")]
    assert {f"Right-{n[5:]}" for n in lefts} <= set(table.names.values())  # merged in pairs
    assert not freesurfer_numbered(table)


# --- names and label sets ---------------------------------------------------------------------

def test_names_and_label_sets_with_and_without_a_table(tmp_path: Path) -> None:
    table = read_label_table(_write(tmp_path / "t.tsv", TSV))
    assert label_name(2, table) == "Right-Hippocampus"
    assert label_name(2) == "Left-Cerebral-White-Matter"
    assert label_name(17, table) == "label-17"  # not named by a non-FreeSurfer table
    assert parse_label_set(None, [0, 1, 9], table) == [1, 2, 3, 4]  # default: the table
    assert parse_label_set(None, [0, 1, 9]) == sorted(ASEG_STRUCTURES)  # default: aseg
    assert parse_label_set("all", [0, 9, 1], table) == [1, 9]
    assert parse_label_set("3,1", [], table) == [1, 3]
    with pytest.raises(NirInputError, match=r"'aseg' means FreeSurfer's aseg ids, but the label "
                                            rf"table {re.escape(str(table.path))}"):
        parse_label_set("aseg", [], table)
    with pytest.raises(NirInputError, match=r"label\(s\) 7 are not in the label table"):
        parse_label_set("1,7", [], table)
    with pytest.raises(NirInputError, match="'table' needs a label table"):
        parse_label_set("table", [])
    assert engine_label_set(None, table) == "1,2,3,4"  # nir register knows no table
    assert engine_label_set("all", table) == "all" and engine_label_set(None, None) == "aseg"


def test_freesurfer_lut_keeps_aseg_and_freesurfer_names(tmp_path: Path) -> None:
    rows = {**ASEG_STRUCTURES, 10: "Left-Thalamus-Proper", 1000: "ctx-lh-unknown"}
    lut = read_label_table(_write(tmp_path / "FreeSurferColorLUT.txt", "".join(
        f"{i} {n} 1 2 3 0\n" for i, n in rows.items())))
    assert freesurfer_numbered(lut)  # FreeSurfer 6's -Proper spelling included
    assert parse_label_set("aseg", [], lut) == sorted(ASEG_STRUCTURES)
    assert label_name(10, lut) == "Left-Thalamus-Proper"  # the table's own spelling
    assert label_name(77, lut) == "WM-hypointensities"  # not in it: FreeSurfer's name


# --- nir evaluate -----------------------------------------------------------------------------

def test_evaluate_names_structures_by_the_table(pair, monkeypatch, capsys) -> None:
    table = _write(pair["dir"] / "t.tsv", TSV)
    out = pair["dir"] / "pair.csv"
    assert _evaluate(monkeypatch, pair, out, "--label-table", table) == 0
    rows = pd.read_csv(out)
    dice = rows[(rows["metric"] == "dice") & (rows["stage"] == "after")].set_index("structure")
    assert list(dice["label"]) == [1, 2, 3, 4]
    assert dice.loc["Left-Hippocampus", "value"] == pytest.approx(0.5)
    assert dice.loc["Right-Hippocampus", "value"] == dice.loc["Brain-Stem", "value"] == 1.0
    assert np.isnan(dice.loc["Left-vessel", "value"])  # in neither map: left empty
    mean = rows[(rows["metric"] == "mean_dice") & (rows["stage"] == "after")]["value"]
    assert mean.item() == pytest.approx(2.5 / 3)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"warning: {table}: label(s) 4 occur in neither" in err


def test_evaluate_without_any_table_label_present_is_an_error(pair, monkeypatch, capsys) -> None:
    table = _write(pair["dir"] / "other.tsv", "id\tname\n7\tA\n8\tB\n")
    out = pair["dir"] / "pair.csv"
    assert _evaluate(monkeypatch, pair, out, "--label-table", table) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"nir evaluate: error: {table}: none of the scored labels (7, 8)")
    assert str(pair["fl"]) in err and "\n" not in err
    assert not out.exists()


def test_lut_and_equivalent_tsv_give_identical_outputs(pair, monkeypatch) -> None:
    tsv, lut = _write(pair["dir"] / "t.tsv", TSV), _write(pair["dir"] / "t.lut", LUT)
    outputs = {}
    for kind, table in (("tsv", tsv), ("lut", lut)):
        csv = pair["dir"] / f"{kind}.csv"
        tables, figures = pair["dir"] / f"tables-{kind}", pair["dir"] / f"figures-{kind}"
        assert _evaluate(monkeypatch, pair, csv, "--label-table", table) == 0
        assert _nir(monkeypatch, "tables", "--pairs", csv, "--out-dir", tables,
                    "--label-table", table) == 0
        assert _nir(monkeypatch, "figures", "--tables", tables, "--out-dir", figures,
                    "--label-table", table) == 0
        outputs[kind] = {"pair.csv": csv.read_bytes(),
                         **{p.name: p.read_bytes() for p in sorted(tables.iterdir())},
                         "figure labels": re.findall(r"<!-- (.+?) -->", (
                             figures / "dice_per_structure.svg").read_text())}
    assert outputs["tsv"] == outputs["lut"]
    assert len(outputs["tsv"]) == 1 + 6 + 1
    assert {"Hippocampus", "Brain-Stem"} <= set(outputs["tsv"]["figure labels"])


def test_tables_and_figures_take_names_from_the_table(pair, monkeypatch) -> None:
    csv = pair["dir"] / "ids.csv"  # scored by id, without a table: names 'Left-Cerebral-...'
    assert _evaluate(monkeypatch, pair, csv, "--labels-set", "1,2,3") == 0
    assert "Left-Hippocampus" not in csv.read_text()
    table = _write(pair["dir"] / "t.tsv", TSV)
    tables, figures = pair["dir"] / "tables", pair["dir"] / "figures"
    assert _nir(monkeypatch, "tables", "--pairs", csv, "--out-dir", tables,
                "--label-table", table) == 0
    per_structure = pd.read_csv(tables / "per_structure.csv")
    before = per_structure[per_structure["stage"] == "before"].set_index("structure")["mean_dice"]
    assert before.to_dict() == pytest.approx({"Hippocampus": 0.75, "Brain-Stem": 1.0})
    assert set(pd.read_csv(tables / "pairs.csv")["structure"]) == {*list(NAMES.values())[:3], "all"}
    assert _nir(monkeypatch, "figures", "--tables", tables, "--out-dir", figures,
                "--label-table", table) == 0
    svg = (figures / "dice_per_structure.svg").read_text()
    assert "Hippocampus" in svg and "Cerebral" not in svg


# --- the workflow's config-time checks and captions --------------------------------------------

def test_label_config_resolves_and_refuses_at_config_time(tmp_path: Path) -> None:
    table = _write(tmp_path / "t.tsv", TSV)
    assert label_config({"evaluation": {}}) == LabelConfig(None, "aseg")
    resolved = label_config({"evaluation": {"label_table": str(table), "labels_set": None}})
    assert resolved == LabelConfig(table, "1,2,3,4")
    assert label_config({"evaluation": {"label_table": str(table), "labels_set": "all"}}
                        ).labels_set == "all"
    with pytest.raises(NirInputError, match=r"^evaluation\.labels_set: 'aseg' means"):
        label_config({"evaluation": {"label_table": str(table), "labels_set": "aseg"}})
    with pytest.raises(NirInputError, match=r"^evaluation\.labels_set: expected"):
        label_config({"evaluation": {"labels_set": "hippocampus"}})
    with pytest.raises(NirInputError, match=rf"^{re.escape(str(table))}: .*template\.build "
                                            r"and tbm\.enabled still assume"):
        label_config({"evaluation": {"label_table": str(table)}, "template": {"build": True},
                      "tbm": {"enabled": True}})
    bad = _write(tmp_path / "bad.tsv", "id\tname\n1\tA\n1\tB\n")
    with pytest.raises(NirInputError, match=rf"^{re.escape(str(bad))}: id 1 appears twice"):
        label_config({"evaluation": {"label_table": str(bad)}})


@pytest.mark.parametrize("caption", ["per_structure.rst", "dice_per_structure.rst",
                                     "workflow.rst"])
def test_report_captions_name_the_table(caption: str) -> None:
    template = jinja2.Template((REPO / "workflow" / "report" / caption).read_text())
    config = {"results": "results", "methods": {"nir": {}}}
    with_table = template.render(snakemake=SimpleNamespace(config={
        **config, "evaluation": {"label_table": "config/oasis_seg35.tsv", "labels_set": None}}))
    without = template.render(snakemake=SimpleNamespace(config={
        **config, "evaluation": {"label_table": None, "labels_set": None}}))
    assert "``config/oasis_seg35.tsv``" in with_table and "FreeSurfer" not in with_table
    assert "as in FreeSurfer's aseg" in without and "label table" not in without


def test_tables_job_passes_the_table(pair, tmp_path: Path, monkeypatch) -> None:
    csv = tmp_path / "ids.csv"
    assert _evaluate(monkeypatch, pair, csv, "--labels-set", "1,2,3") == 0
    table = _write(tmp_path / "t.tsv", TSV)
    out = tmp_path / "tables"
    job = SimpleNamespace(input=SimpleNamespace(pairs=[str(csv)], label_table=str(table)),
                          params=SimpleNamespace(out_dir=str(out)), log=[str(tmp_path / "log")])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(REPO / "workflow" / "scripts" / "tables.py"),
                       init_globals={"snakemake": job})
    assert exited.value.code == 0, (tmp_path / "log").read_text()
    structures = set(pd.read_csv(out / "per_structure.csv")["structure"])
    assert structures == {"Hippocampus", "Brain-Stem"}


# --- a real pair in another numbering ---------------------------------------------------------

def test_relabelled_real_pair_scores_the_same_under_the_table_names(real_cohort, tmp_path,
                                                                    monkeypatch) -> None:
    """The affine-only pair sub-02 -> sub-01 of aligned160, scored in FreeSurfer's numbering and
    with its 32 main aseg ids mapped to 1..32 in a shuffled order (other labels moved out of the
    way) and the matching table: the same Dice and HD95 per structure, under the same names."""
    folder = real_cohort / "derivatives" / "aligned160"
    files = {key: folder / f"{sub}/anat/{sub}_space-MNI305_desc-aseg_dseg.nii.gz"
             for key, sub in (("fl", "sub-01"), ("ml", "sub-02"))}
    new_ids = np.random.default_rng(0).permutation(np.arange(1, 33))
    mapping = dict(zip(sorted(ASEG_STRUCTURES), new_ids.tolist(), strict=True))
    relabelled = {"dir": tmp_path}
    for key, path in files.items():
        image = nib.load(str(path))
        data = np.asarray(image.dataobj).astype(np.int32)
        out = np.where(data > 0, 1000 + data, 0)  # labels outside the 32: out of 1..32
        for old, new in mapping.items():
            out[data == old] = new
        relabelled[key] = _save(out, tmp_path / f"{key}.nii.gz", image.affine)
    table = _write(tmp_path / "renumbered.tsv", "id\tname\n" + "".join(
        f"{new}\t{ASEG_STRUCTURES[old]}\n" for old, new in mapping.items()))

    original, renumbered = tmp_path / "original.csv", tmp_path / "renumbered.csv"
    assert _evaluate(monkeypatch, files, original) == 0  # default: aseg, FreeSurfer names
    assert _evaluate(monkeypatch, relabelled, renumbered, "--label-table", table) == 0
    a, b = (pd.read_csv(p).set_index(["stage", "structure", "metric"]) for p in
            (original, renumbered))
    assert len(a) == len(b) == 2 * 32 * 2 + 4 + 7  # per structure, then the pair rows
    assert set(a.index) == set(b.index)  # the same names
    b = b.loc[a.index]
    per_structure = a["label"] != -1
    assert (a.loc[per_structure, "label"].map(mapping) == b.loc[per_structure, "label"]).all()
    assert a.loc[per_structure, "value"].notna().sum() >= 2 * 28 * 2  # most structures occur
    np.testing.assert_array_equal(a["value"].to_numpy(), b["value"].to_numpy())
    assert 0.4 < a.loc[("before", "all", "mean_dice"), "value"] < 0.8
