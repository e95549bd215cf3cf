"""Cohort discovery (sheet, BIDS, demo), strict subject IDs and pair generation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nir.errors import NirInputError
from nir.study.cohort import (
    PAIR_MEMBER_REGEX,
    PAIR_SEPARATOR,
    Pair,
    check_files,
    check_id,
    check_no_brainmask,
    check_suffix,
    cohort_from_config,
    demo_ids,
    discover_bids,
    make_pairs,
    read_sheet,
)

FS_COHORT = Path(__file__).resolve().parents[2] / "shared/data/fs-cohort"
ALIGNED_T1W = "derivatives/aligned160/{subject}/anat/{subject}_space-MNI305_desc-brain_T1w.nii.gz"
ALIGNED_ASEG = "derivatives/aligned160/{subject}/anat/{subject}_space-MNI305_desc-aseg_dseg.nii.gz"


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def _sheet(tmp_path: Path, rows: list[str], header: str = "subject\tt1w\tlabels") -> Path:
    sheet = tmp_path / "cohort.tsv"
    sheet.write_text("\n".join([header, *rows]) + "\n")
    return sheet


def test_sheet_resolves_paths_relative_to_the_sheet(tmp_path: Path) -> None:
    _touch(tmp_path / "a" / "t1.nii.gz")
    _touch(tmp_path / "a" / "aseg.nii.gz")
    sheet = _sheet(tmp_path, ["s01\ta/t1.nii.gz\ta/aseg.nii.gz", "s02\t/abs/t1.nii.gz\tn/a"])
    subjects = read_sheet(sheet)
    assert [s.id for s in subjects] == ["s01", "s02"]
    assert subjects[0].t1w == tmp_path / "a" / "t1.nii.gz"
    assert subjects[1].t1w == Path("/abs/t1.nii.gz")
    assert subjects[1].labels is None


@pytest.mark.parametrize("bad", ["../x", "a;b", "-rf", "sub 01", "", "a/b", "$(id)"])
def test_unsafe_id_in_sheet_is_refused_naming_id_and_sheet(tmp_path: Path, bad: str) -> None:
    sheet = _sheet(tmp_path, ["ok01\tt1.nii.gz\tl.nii.gz", f"{bad}\tt1.nii.gz\tl.nii.gz"])
    with pytest.raises(NirInputError) as err:
        read_sheet(sheet)
    message = str(err.value)
    assert str(sheet) in message
    assert repr(bad) in message
    assert "unsafe subject ID" in message


@pytest.mark.parametrize("bad", ["sub-01\n", "sub-01\r", "\nsub-01", "sub-01\n\n"])
def test_id_with_a_line_break_is_refused(bad: str) -> None:
    assert check_id("sub-01", "sheet") == "sub-01"
    with pytest.raises(NirInputError, match="unsafe subject ID"):
        check_id(bad, "sheet")


def test_bids_folder_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    _touch(tmp_path / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    _touch(tmp_path / "sub-02\n" / "anat" / "sub-02\n_T1w.nii.gz")
    with pytest.raises(NirInputError, match=r"unsafe subject ID 'sub-02\\n'"):
        discover_bids(tmp_path)


def test_sheet_needs_subject_and_t1w_columns(tmp_path: Path) -> None:
    with pytest.raises(NirInputError, match="missing column"):
        read_sheet(_sheet(tmp_path, ["s1\tl.nii.gz"], header="subject\tlabels"))


def test_sheet_rejects_unknown_columns_and_duplicates(tmp_path: Path) -> None:
    with pytest.raises(NirInputError, match="unknown column"):
        read_sheet(_sheet(tmp_path, ["s1\tt\tx"], header="subject\tt1w\tage"))
    with pytest.raises(NirInputError, match="more than once"):
        read_sheet(_sheet(tmp_path, ["s1\tt\tl", "s1\tt\tl"]))


def test_missing_subject_file_is_named(tmp_path: Path) -> None:
    _touch(tmp_path / "t1.nii.gz")
    sheet = _sheet(tmp_path, ["s01\tt1.nii.gz\tmissing_aseg.nii.gz"])
    with pytest.raises(NirInputError) as err:
        check_files(read_sheet(sheet), sheet, require_labels=True)
    assert "missing_aseg.nii.gz" in str(err.value)
    assert "does not exist" in str(err.value)


def test_missing_labels_refused_when_required(tmp_path: Path) -> None:
    _touch(tmp_path / "t1.nii.gz")
    sheet = _sheet(tmp_path, ["s01\tt1.nii.gz"], header="subject\tt1w")
    subjects = read_sheet(sheet)
    check_files(subjects, sheet, require_labels=False)
    with pytest.raises(NirInputError, match="no labels"):
        check_files(subjects, sheet, require_labels=True)


def test_bids_discovery_default_and_patterns(tmp_path: Path) -> None:
    for sid in ("sub-b", "sub-a"):
        _touch(tmp_path / sid / "anat" / f"{sid}_T1w.nii.gz")
        _touch(tmp_path / "derivatives" / sid / f"{sid}_aseg.nii.gz")
    subjects = discover_bids(tmp_path, labels="derivatives/{subject}/{subject}_aseg.nii.gz")
    assert [s.id for s in subjects] == ["sub-a", "sub-b"]
    assert subjects[0].t1w == tmp_path / "sub-a" / "anat" / "sub-a_T1w.nii.gz"
    assert subjects[1].labels == tmp_path / "derivatives" / "sub-b" / "sub-b_aseg.nii.gz"
    check_files(subjects, tmp_path, require_labels=True)


def test_bids_unsafe_folder_and_ambiguous_t1w(tmp_path: Path) -> None:
    _touch(tmp_path / "sub-a;b" / "anat" / "x_T1w.nii.gz")
    with pytest.raises(NirInputError, match="unsafe subject ID 'sub-a;b'"):
        discover_bids(tmp_path)
    other = tmp_path / "other"
    _touch(other / "sub-1" / "anat" / "run-1_T1w.nii.gz")
    _touch(other / "sub-1" / "anat" / "run-2_T1w.nii.gz")
    with pytest.raises(NirInputError, match=r"2 \*_T1w\.nii\.gz files"):
        discover_bids(other)


def test_bids_real_fs_cohort() -> None:
    if not FS_COHORT.is_dir():
        pytest.skip("real data ../shared/data/fs-cohort absent")
    raw = discover_bids(FS_COHORT,
                        labels="derivatives/freesurfer/{subject}/anat/{subject}_desc-aseg_dseg.nii.gz")
    assert [s.id for s in raw] == [f"sub-0{i}" for i in range(1, 7)]
    check_files(raw, FS_COHORT, require_labels=True)
    aligned = discover_bids(FS_COHORT, labels=ALIGNED_ASEG, t1w=ALIGNED_T1W)
    check_files(aligned, FS_COHORT, require_labels=True)
    assert "aligned160" in str(aligned[2].t1w)


def test_config_cohort_sources_and_subset(tmp_path: Path) -> None:
    demo, source = cohort_from_config({"demo": {"n_subjects": 3}, "subjects": ["sub-03"]},
                                      tmp_path)
    assert source == "demo"
    assert [s.id for s in demo] == ["sub-03"]
    assert demo[0].t1w == tmp_path / "sub-03" / "anat" / "sub-03_T1w.nii.gz"
    with pytest.raises(NirInputError, match="not both"):
        cohort_from_config({"cohort": "x.tsv", "bids": {"root": "y"}}, tmp_path)
    with pytest.raises(NirInputError, match="'sub-09' listed in 'subjects'"):
        cohort_from_config({"demo": {"n_subjects": 3}, "subjects": ["sub-09"]}, tmp_path)


def test_demo_ids_padding() -> None:
    assert demo_ids(3) == ["sub-01", "sub-02", "sub-03"]
    assert demo_ids(100)[0] == "sub-001"
    with pytest.raises(NirInputError):
        demo_ids(1)


IDS = ["s1", "s2", "s3", "s4"]


def test_pairs_all_is_every_ordered_pair() -> None:
    pairs = make_pairs(IDS, "all")
    assert len(pairs) == len(IDS) * (len(IDS) - 1)
    assert len({p.id for p in pairs}) == len(pairs)
    assert all(p.moving != p.fixed for p in pairs)
    assert Pair("s2", "s1").id == "s2_to_s1"


def test_pairs_template_registers_everyone_onto_it() -> None:
    pairs = make_pairs(IDS, "template", template="s3")
    assert [(p.moving, p.fixed) for p in pairs] == [("s1", "s3"), ("s2", "s3"), ("s4", "s3")]
    assert {p.fixed for p in make_pairs(IDS, "template")} == {"s1"}
    with pytest.raises(NirInputError, match="not a subject"):
        make_pairs(IDS, "template", template="zz")


def test_pairs_random_is_reproducible_and_distinct() -> None:
    a = make_pairs(IDS, "random", k=5, seed=7)
    assert a == make_pairs(IDS, "random", k=5, seed=7)
    assert len({p.id for p in a}) == 5
    assert any(make_pairs(IDS, "random", k=5, seed=s) != a for s in range(8, 12))
    with pytest.raises(NirInputError, match="between 1 and 12"):
        make_pairs(IDS, "random", k=13)


def test_pairs_file(tmp_path: Path) -> None:
    listing = tmp_path / "pairs.tsv"
    listing.write_text("moving\tfixed\ns2\ts1\ns4\ts3\n")
    assert make_pairs(IDS, "file", file=listing) == [Pair("s2", "s1"), Pair("s4", "s3")]
    listing.write_text("moving\tfixed\ns2\tzz\n")
    with pytest.raises(NirInputError, match="'zz' of pair s2_to_zz is not in the cohort"):
        make_pairs(IDS, "file", file=listing)
    listing.write_text("moving\tfixed\ns2\ts2\n")
    with pytest.raises(NirInputError, match="onto itself"):
        make_pairs(IDS, "file", file=listing)
    listing.write_text("moving\tfixed\ns2\ts1\ns2\ts1\n")
    with pytest.raises(NirInputError, match="listed twice"):
        make_pairs(IDS, "file", file=listing)


def test_pair_separator_in_subject_id_is_refused() -> None:
    with pytest.raises(NirInputError, match="'a_to_b' contains '_to_'"):
        make_pairs(["a", "a_to_b", "b"], "all")


def test_pair_member_regex_splits_pair_ids_one_way() -> None:
    pattern = re.compile(rf"^({PAIR_MEMBER_REGEX}){PAIR_SEPARATOR}({PAIR_MEMBER_REGEX})$")
    for pair in make_pairs(["sub-01", "ctl_2", "x"], "all"):
        assert pattern.match(pair.id).groups() == (pair.moving, pair.fixed)
    assert pattern.match("a_to_b_to_c") is None


def test_check_suffix_names_the_file(tmp_path: Path) -> None:
    _touch(tmp_path / "t1.mgz")
    _touch(tmp_path / "l.nii.gz")
    subjects = read_sheet(_sheet(tmp_path, ["s01\tt1.mgz\tl.nii.gz"]))
    with pytest.raises(NirInputError, match=r"t1\.mgz: input of subject 's01' must be a \.nii\.gz"):
        check_suffix(subjects, ".nii.gz", "sheet")


def test_brainmask_of_preprocessed_inputs_is_refused(tmp_path: Path) -> None:
    for name in ("t1.nii.gz", "l.nii.gz", "mask.nii.gz"):
        _touch(tmp_path / name)
    plain = read_sheet(_sheet(tmp_path, ["s01\tt1.nii.gz\tl.nii.gz"]))
    check_no_brainmask(plain, "sheet")
    masked = read_sheet(_sheet(tmp_path, ["s01\tt1.nii.gz\tl.nii.gz\tmask.nii.gz"],
                               header="subject\tt1w\tlabels\tbrainmask"))
    assert masked[0].brainmask == tmp_path / "mask.nii.gz"
    with pytest.raises(NirInputError, match=r"mask\.nii\.gz: brain mask of subject 's01' .*"
                                            r"preprocessed: true"):
        check_no_brainmask(masked, "sheet")
