"""The config's ``exclude`` list: an excluded subject is in no job and no input of the workflow
(template, statistics, TIV), the design leaves it out, and each bad entry stops the run at config
time with one error naming ``config: exclude``; (slow) a tiny template study in which a
left-right flipped subject is the one QC outlier, and the same study with it excluded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from nir.errors import NirInputError
from nir.spatial.io import save_volume
from nir.study.cohort import cohort_from_config
from nir.study.design import read_design
from nir.study.exclusions import check_not_named, parse_exclusions
from tests.cube_cohort import write_cube_cohort

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"
GROUPS = ["a", "b", "a", "b", "a", "b"]  # sub-01 … sub-06
OUT = "sub-03"


def _snakemake(workdir: Path, config: Path, *extra: str, timeout: float = 300
               ) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(workdir),
               "--configfile", str(config), "--cores", "2", *extra]
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                                   os.environ.get("PATH", "")])}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def _cohort(folder: Path) -> Path:
    """Six tiny subjects and their sheet with group and age columns."""
    return write_cube_cohort(folder, [f"{g}\t{60 + 3 * i % 7}" for i, g in enumerate(GROUPS, 1)])


def _config(folder: Path, sheet: Path, exclude, **sections) -> Path:
    config = {"cohort": str(sheet), "preprocessed": False, "preprocess": {"skull_strip": "none"},
              "pairs": {"mode": "none"}, "methods": {"nir": {"preset": "fast"}},
              "template": {"build": True, "iterations": 1},
              "tbm": {"enabled": True, "covariates": ["age", "tiv"]}, "exclude": exclude,
              **sections}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# --- the exclusions themselves ------------------------------------------------------------

def test_list_and_mapping_forms_give_the_same_exclusions() -> None:
    listed = parse_exclusions([{"subject": "sub-03", "reason": " motion "},
                               {"subject": "sub-05", "reason": "left-right flip"}])
    assert listed == {"sub-03": "motion", "sub-05": "left-right flip"}
    assert parse_exclusions({"sub-03": "motion", "sub-05": "left-right flip"}) == listed
    assert parse_exclusions([]) == parse_exclusions(None) == {}


@pytest.mark.parametrize(("value", "expected"), [
    ([{"subject": "sub-03", "reason": "  "}], "'sub-03' has an empty reason"),
    ({"sub-03": ""}, "'sub-03' has an empty reason"),
    ([{"subject": "sub-03", "reason": "a"}, {"subject": "sub-03", "reason": "b"}],
     "'sub-03' is listed twice"),
    ([{"subject": "../x", "reason": "a"}], "unsafe subject ID '../x'"),
])
def test_bad_entries_name_the_key(value, expected: str) -> None:
    with pytest.raises(NirInputError, match=expected) as err:
        parse_exclusions(value)
    assert str(err.value).startswith("config: exclude: ")


def test_cohort_leaves_the_excluded_out_before_checking_their_files(tmp_path: Path) -> None:
    sheet = _cohort(tmp_path)
    (tmp_path / f"{OUT}_T1w.nii.gz").unlink()  # an excluded subject's files may be missing
    config = {"cohort": str(sheet), "tbm": {"enabled": True, "covariates": ["age"]}}
    subjects, _ = cohort_from_config(config, tmp_path, {OUT: "no T1w"})
    assert [s.id for s in subjects] == ["sub-01", "sub-02", "sub-04", "sub-05", "sub-06"]
    with pytest.raises(NirInputError, match="does not exist"):
        cohort_from_config(config, tmp_path)
    with pytest.raises(NirInputError, match=r"config: exclude: subject 'sub-09' is not a "
                                            r"subject of the cohort \(.*cohort.tsv"):
        cohort_from_config(config, tmp_path, {"sub-09": "typo"})
    # a subject the 'subjects' key already left out is not in the cohort either
    with pytest.raises(NirInputError, match="'sub-01' is not a subject of the cohort"):
        cohort_from_config({**config, "subjects": ["sub-02", "sub-04", "sub-05"]},
                           tmp_path, {"sub-01": "motion", OUT: "no T1w"})
    with pytest.raises(NirInputError, match="excluding 5 of 6 subjects leaves 1; a study needs "
                                            "at least 2"):
        cohort_from_config({"demo": {"n_subjects": 6}}, tmp_path,
                           {f"sub-0{i}": "x" for i in range(1, 6)})


def test_an_excluded_subject_cannot_be_the_template_or_pairs_subject() -> None:
    excluded = {"sub-01": "motion"}
    with pytest.raises(NirInputError, match=r"'sub-01' is excluded \(motion\) but "
                                            r"template\.initial names it"):
        check_not_named({"template": {"initial": "sub-01"}}, excluded)
    with pytest.raises(NirInputError, match=r"pairs\.template names it"):
        check_not_named({"pairs": {"template": "sub-01"}}, excluded)
    check_not_named({"template": {"initial": "mean"}, "pairs": {"template": None}}, excluded)


def test_design_without_the_excluded_subject(tmp_path: Path) -> None:
    sheet = _cohort(tmp_path)
    kept = ["sub-01", "sub-02", "sub-04", "sub-05", "sub-06"]
    design = read_design(sheet, kept, covariates=["age"], excluded=[OUT])
    assert design.subjects == tuple(kept)
    assert design.groups == ("a", "b", "b", "a", "b")
    ages = pd.read_csv(sheet, sep="\t").set_index("subject").loc[kept, "age"].to_numpy(float)
    X = design.matrix()
    assert X.shape == (5, 3)
    assert np.allclose(X[:, 2], ages - ages.mean())  # centred over the five, not the six
    # excluding two of group a's three leaves one: the error says the exclusion did it
    with pytest.raises(NirInputError) as err:
        read_design(sheet, ["sub-02", "sub-04", "sub-05", "sub-06"], excluded=["sub-01", OUT])
    assert str(err.value) == (
        f"config: exclude: group 'a' (column 'group' of {sheet}) keeps 1 subject(s) ('sub-05') "
        "once 'sub-01', 'sub-03' are excluded; each group needs at least 2")


# --- through the workflow: what the jobs read, and the config-time errors -------------------

def test_no_job_and_no_input_mentions_an_excluded_subject(tmp_path: Path) -> None:
    sheet = _cohort(tmp_path / "data")
    plans = {}
    for name, exclude in (("all", []), ("excluded", [{"subject": OUT, "reason": "motion"}])):
        workdir = tmp_path / name
        workdir.mkdir()
        done = _snakemake(workdir, _config(workdir, sheet, exclude), "-n", "-p")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        plans[name] = done.stdout
    # without the exclusion the subject is preprocessed, registered in both rounds, in the TIV
    # and the statistics; with it, nothing planned names it
    assert plans["all"].count(OUT) > 10 and "rule tbm_tiv:" in plans["all"]
    assert OUT not in plans["excluded"]
    for rule in ("preprocess", "template_register", "template_register_final"):
        assert plans["excluded"].count(f"rule {rule}:") == 5, rule
    for rule in ("tbm_tiv", "tbm_glm", "tbm_volumes", "template_init", "template_update",
                 "template_qc"):
        inputs = plans["excluded"].split(f"rule {rule}:")[1].split("\n")[1]
        assert inputs.strip().startswith("input:") and "sub-01" in inputs, (rule, inputs)


@pytest.mark.parametrize(("exclude", "expected"), [
    ([{"subject": "sub-09", "reason": "motion"}],
     "config: exclude: subject 'sub-09' is not a subject of the cohort"),
    ([{"subject": OUT, "reason": " "}], "config: exclude: subject 'sub-03' has an empty reason"),
    ({"sub-01": "motion", OUT: "flip"},
     "config: exclude: group 'a' (column 'group' of data/cohort.tsv) keeps 1 subject(s) "
     "('sub-05') once 'sub-01', 'sub-03' are excluded"),
])
def test_bad_exclusions_stop_the_workflow_at_config_time(tmp_path: Path, exclude,
                                                         expected: str) -> None:
    sheet = _cohort(tmp_path / "data")
    config = _config(tmp_path, sheet.relative_to(tmp_path), exclude)
    done = _snakemake(tmp_path, config, "-n")
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "NirInputError" in output
    assert expected in output, output[-3000:]
    assert output.count("NirInputError") == 1
    assert not (tmp_path / "results").exists()  # no job ran


def test_demo_groups_are_checked_before_the_demo_is_written(tmp_path: Path) -> None:
    """The two-group demo's table is written by its first job; the groups it will hold are
    known (odd controls, even patients), so an exclusion that empties one stops the run."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "demo": {"n_subjects": 5, "groups": 2}, "pairs": {"mode": "none"},
        "methods": {"nir": {"preset": "fast"}}, "template": {"build": True, "iterations": 1},
        "tbm": {"enabled": True}, "exclude": {"sub-02": "motion", "sub-04": "flip"}}))
    done = _snakemake(tmp_path, config, "-n")
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert ("config: exclude: group 'patient' (column 'group' of results/demo/participants.tsv) "
            "keeps 0 subject(s) (none) once 'sub-02', 'sub-04' are excluded") in output, \
        output[-3000:]


# --- (slow) a tiny template study with a left-right flipped subject -------------------------

FLIPPED = "sub-04"
SHAPE = (16, 16, 16)
# a short fast-preset registration: enough to bring the unflipped subjects onto the template
PARAMS = {"preset": "fast", "coarse_iterations": 10, "iterations": 10}


def _brains(folder: Path) -> Path:
    """Six 4 mm 'brains' (a textured ellipsoid, each shifted and stretched a little, with
    aseg-numbered white matter 2/41 and a left hippocampus 17); ``FLIPPED`` is stored
    left-right mirrored, image and labels, as a wrong orientation header would show it."""
    folder.mkdir(parents=True, exist_ok=True)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = -30.0
    world = np.indices(SHAPE).transpose(1, 2, 3, 0) * 4.0 - 30.0
    rows = ["subject\tt1w\tlabels"]
    for index in range(6):
        sid = f"sub-{index + 1:02d}"
        centre = np.array([0.4 * index - 1, 0.5 - 0.2 * index, 0.3 * index])
        radius = np.array([20.0 + 0.3 * index, 22.0, 18.0 - 0.2 * index])
        inside = np.sqrt((((world - centre) / radius) ** 2).sum(-1)) < 1
        image = np.where(inside, 0.6 + 0.3 * np.sin(world[..., 0] / 5) * np.cos(world[..., 1] / 7),
                         0.0)
        labels = np.where(inside, np.where(world[..., 0] < centre[0], 2, 41), 0)
        labels[inside & (np.linalg.norm(world - centre - [-8, 0, 0], axis=-1) < 6)] = 17
        if sid == FLIPPED:
            image, labels = image[::-1], labels[::-1]
        save_volume(image.astype(np.float32), affine, folder / f"{sid}.nii.gz")
        save_volume(labels.astype(np.int32), affine, folder / f"{sid}_dseg.nii.gz")
        rows.append(f"{sid}\t{sid}.nii.gz\t{sid}_dseg.nii.gz")
    sheet = folder / "cohort.tsv"
    sheet.write_text("\n".join(rows) + "\n")
    return sheet


@pytest.mark.slow
def test_a_flipped_subject_is_the_qc_outlier_and_excluding_it_drops_it(tmp_path: Path) -> None:
    sheet = _brains(tmp_path / "data")
    qc = {}
    for name, exclude in (("all", []),
                          ("excluded", [{"subject": FLIPPED, "reason": "left-right flip"}])):
        workdir = tmp_path / name
        workdir.mkdir()
        config = _config(workdir, sheet, exclude, preprocessed=True, preprocess={},
                         methods={"tpl": PARAMS}, device="cpu", tbm={"enabled": False})
        report = workdir / "report.html"
        for extra in ((), ("--report", str(report))):
            done = _snakemake(workdir, config, *extra, timeout=1800)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        qc[name] = pd.read_csv(workdir / "results/template/qc/template_qc.csv")
        print(name, qc[name].to_string(), sep="\n")
    table = qc["all"].set_index("subject")
    assert table["outlier"].tolist() == [sid == FLIPPED for sid in table.index]
    assert "dice" in table.loc[FLIPPED, "flagged_by"]
    assert table.loc[FLIPPED, "dice"] < table.drop(FLIPPED)["dice"].min() - 0.2
    # excluded: not registered in any round, not in the template's QC, listed with its reason
    template = tmp_path / "excluded" / "results" / "template"
    assert FLIPPED not in qc["excluded"]["subject"].tolist() and len(qc["excluded"]) == 5
    assert not qc["excluded"]["outlier"].any()
    assert not list((tmp_path / "excluded" / "results").rglob(f"*{FLIPPED}*"))
    for k in (0, 1):
        assert yaml.safe_load((template / f"iter-{k:02d}/round.json").read_text())["subjects"] \
            == 5
    assert f"- {FLIPPED}: left-right flip" in (template / "qc/template_qc.md").read_text()
    assert "left-right flip" in (tmp_path / "excluded" / "report.html").read_text()
