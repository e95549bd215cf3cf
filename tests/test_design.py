"""The group design: a valid table gives the design matrix; each bad input is one error naming
the table, the column and the subject."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nir.errors import NirInputError
from nir.study.design import read_design

IDS = ["sub-01", "sub-02", "sub-03", "sub-04", "sub-05"]


def _table(tmp_path: Path, rows: list[str], header: str = "participant_id\tgroup\tage") -> Path:
    path = tmp_path / "participants.tsv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


GOOD = ["sub-01\tcontrol\t61", "sub-02\tpatient\t70", "sub-03\tcontrol\t65",
        "sub-04\tpatient\t72", "sub-05\tcontrol\t68"]


def test_design_matrix_codes_the_contrast_and_centres_covariates(tmp_path: Path) -> None:
    design = read_design(_table(tmp_path, GOOD), IDS, covariates=["age"])
    assert design.levels == ("control", "patient")
    X = design.matrix()
    assert X.shape == (5, 3)
    assert np.array_equal(X[:, 1], [0, 1, 0, 1, 0])
    assert X[:, 2].mean() == pytest.approx(0.0)
    flipped = read_design(_table(tmp_path, GOOD), IDS, groups=["patient", "control"])
    assert np.array_equal(flipped.indicator, [1, 0, 1, 0, 1])


@pytest.mark.parametrize(("rows", "expected"), [
    ([*GOOD[:3], "sub-04\tcontrol\t72", GOOD[4]], ["'group'", "'patient'", "'sub-02'",
                                                   "at least 2"]),
    ([*GOOD[:2], "sub-03\tn/a\t65", *GOOD[3:]], ["'group'", "'sub-03'", "no value"]),
    ([*GOOD[:4], "sub-05\tcontrol\told"], ["'age'", "'sub-05'", "'old'", "not a number"]),
    ([*GOOD[:4], "sub-05\tcontrol\t"], ["'age'", "'sub-05'", "no value"]),
    (GOOD[:4], ["'sub-05'", "no row"]),
    ([*GOOD[:4], "sub-05\tother\t60"], ["'group'", "3 group(s)"]),
])
def test_bad_input_names_column_and_subject(tmp_path: Path, rows: list[str],
                                            expected: list[str]) -> None:
    table = _table(tmp_path, rows)
    with pytest.raises(NirInputError) as err:
        read_design(table, IDS, covariates=["age"])
    message = str(err.value)
    assert str(table) in message
    for part in expected:
        assert part in message, message


def test_unknown_group_in_listed_groups_and_missing_column(tmp_path: Path) -> None:
    table = _table(tmp_path, GOOD)
    with pytest.raises(NirInputError, match="'sub-02' is in group 'patient'"):
        read_design(table, IDS, groups=["control", "case"])
    with pytest.raises(NirInputError, match="no column 'sex'"):
        read_design(table, IDS, covariates=["sex"])
    with pytest.raises(NirInputError, match="same value for every subject"):
        read_design(_table(tmp_path, [r.rsplit("\t", 1)[0] + "\t60" for r in GOOD]), IDS,
                    covariates=["age"])


def test_sample_sheet_may_carry_the_group_columns_the_tbm_section_names(tmp_path: Path) -> None:
    from nir.study.cohort import make_pairs, read_sheet, sheet_design_columns

    sheet = tmp_path / "cohort.tsv"
    sheet.write_text("subject\tt1w\tlabels\tgroup\tage\nsub-01\ta.nii.gz\tb.nii.gz\tx\t60\n")
    config = {"tbm": {"enabled": True, "group_column": "group", "covariates": ["age"]}}
    assert sheet_design_columns(config) == ("group", "age")
    assert read_sheet(sheet, sheet_design_columns(config))[0].id == "sub-01"
    with pytest.raises(NirInputError, match="unknown column"):
        read_sheet(sheet)  # without the tbm section they are typos
    config["tbm"]["participants"] = "elsewhere.tsv"
    assert sheet_design_columns(config) == ()
    assert make_pairs(["sub-01", "sub-02"], mode="none") == []
