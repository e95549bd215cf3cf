"""Total intracranial volume (TIV) as a covariate: the volume of a native brain mask, the design
with a computed covariate, and a planted head-size difference that the group test finds without
the TIV covariate and no longer finds with it (voxelwise and per structure)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from nir.errors import NirInputError
from nir.spatial.io import save_volume
from nir.stats.tbm import voxelwise_tbm
from nir.stats.volumes import (
    design_with_tiv,
    mask_volume_ml,
    native_volumes,
    read_tiv,
    structure_tests,
    tiv_table,
)
from nir.study.design import computed_covariates, read_design

IDS = [f"sub-{i:02d}" for i in range(1, 13)]
NATIVE = np.diag([1.2, 1.0, 1.1, 1.0])  # anisotropic native voxels: 1.32 mm³
SHAPE = (24, 28, 22)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def _table(tmp_path: Path, header: str = "subject\tgroup\tage") -> Path:
    path = tmp_path / "participants.tsv"
    rows = [f"{sid}\t{'control' if i < 6 else 'patient'}\t{60 + (7 * i) % 13}"
            for i, sid in enumerate(IDS)]
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_mask_volume_counts_voxels_times_their_native_volume(tmp_path: Path) -> None:
    mask = np.zeros((30, 30, 30), np.uint8)
    mask[5:15, 5:25, 10:20] = 1
    path = save_volume(mask, NATIVE, tmp_path / "mask.nii.gz")
    assert mask_volume_ml(path) == pytest.approx(2000 * 1.32 / 1000)
    table = tiv_table([path, path], ["a", "b"])
    table.to_csv(tmp_path / "tiv.csv", index=False)
    assert read_tiv(tmp_path / "tiv.csv") == {"a": pytest.approx(2.64), "b": pytest.approx(2.64)}


def test_design_counts_a_pending_tiv_and_takes_it_once_computed(tmp_path: Path) -> None:
    table = _table(tmp_path)
    assert computed_covariates(table, ["age", "tiv"]) == ("tiv",)
    assert computed_covariates(tmp_path / "absent.tsv", ["tiv"]) == ("tiv",)
    pending = read_design(table, IDS, covariates=["age", "tiv"], computable=("tiv",))
    assert list(pending.covariates) == ["age"]  # config time: no values yet
    tiv = {sid: 1400.0 + 10 * i for i, sid in enumerate(IDS)}
    design = read_design(table, IDS, covariates=["age", "tiv"], computable=("tiv",),
                         computed={"tiv": tiv})
    assert design.columns() == ["intercept", "patient-control", "age", "tiv"]
    assert np.allclose(design.matrix()[:, 3], np.array(list(tiv.values())) - 1455.0)
    # a tiv column of the table wins over computing it
    with_column = tmp_path / "given"
    with_column.mkdir()
    given = _table(with_column, "subject\tgroup\ttiv")
    assert computed_covariates(given, ["tiv"]) == ()
    design = read_design(given, IDS, covariates=["tiv"], computable=("tiv",))
    assert design.covariates["tiv"][0] == 60


def test_tiv_bad_input_is_one_error_at_config_time(tmp_path: Path) -> None:
    table = _table(tmp_path)
    not_yet = tmp_path / "demo.tsv"  # a table the workflow has still to write
    for named, check in ((table, lambda: read_design(table, IDS, covariates=["tiv"])),
                         (not_yet, lambda: computed_covariates(not_yet, ["tiv"], ()))):
        with pytest.raises(NirInputError) as err:  # preprocessed: true: nothing to compute from
            check()
        message = str(err.value)
        assert str(named) in message and "covariate 'tiv' is not a column" in message
        assert "preprocessed: true" in message
    with pytest.raises(NirInputError, match=r"no column 'sex' \(found: subject, group, age; "
                                            r"the workflow computes tiv\)"):
        read_design(table, IDS, covariates=["sex"], computable=("tiv",))
    few = IDS[:4]  # 2 + 2 subjects and 2 covariates: no residual degrees of freedom
    small = tmp_path / "small"
    small.mkdir()
    (small / "p.tsv").write_text("subject\tgroup\tage\n" + "".join(
        f"{sid}\t{g}\t{a}\n" for sid, g, a in zip(few, ["a", "a", "b", "b"], [60, 65, 62, 70],
                                                   strict=True)))
    with pytest.raises(NirInputError, match="4 subjects leave no residual degrees of freedom"):
        read_design(small / "p.tsv", few, covariates=["age", "tiv"], computable=("tiv",))


def _ellipsoid(shape: tuple[int, ...], centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1.0


def _head_sizes() -> np.ndarray:
    """Linear head scale per subject: patients 4 % larger on average, 2 % spread in both."""
    rng = np.random.default_rng(42)
    return np.where(np.arange(12) < 6, 1.0, 1.04) * (1.0 + 0.02 * rng.standard_normal(12))


def _native_masks(tmp_path: Path, scales: np.ndarray) -> tuple[list[Path], list[Path]]:
    """Per subject a native brain mask (an ellipsoid) and a label map with three structures,
    all scaled by the subject's head size, the hippocampi also by a 1.5 % (4.5 % in volume)
    individual variation of their own."""
    masks, labels = [], []
    centre = np.array([40.0, 48.0, 40.0])
    own = 1.0 + 0.015 * np.random.default_rng(3).standard_normal((len(IDS), 2))
    for sid, scale, (left, right) in zip(IDS, scales, own, strict=True):
        brain = _ellipsoid((80, 96, 80), centre, scale * np.array([30.0, 38.0, 30.0]))
        label = np.where(brain, 2, 0).astype(np.int32)
        label[_ellipsoid(brain.shape, centre + scale * np.array([-10, 0, -5]),
                         left * scale * np.array([4.0, 9.0, 4.0]))] = 17
        label[_ellipsoid(brain.shape, centre + scale * np.array([10, 0, -5]),
                         right * scale * np.array([4.0, 9.0, 4.0]))] = 53
        masks.append(save_volume(brain.astype(np.uint8), NATIVE, tmp_path / f"{sid}_mask.nii.gz"))
        labels.append(save_volume(label, NATIVE, tmp_path / f"{sid}_labels.nii.gz"))
    return masks, labels


def test_a_head_size_difference_vanishes_with_the_tiv_covariate(tmp_path: Path) -> None:
    """Patients' heads 4 % larger (12 % in volume). Per structure (native volumes) and
    voxelwise (TFCE of log-Jacobians that keep the head size, as those of an analysis without
    affine normalisation would), the groups differ without the TIV covariate, computed from
    the native brain masks, and do not with it."""
    scales = _head_sizes()
    masks, labels = _native_masks(tmp_path, scales)
    tiv_path = tmp_path / "tiv.csv"
    tiv_table(masks, IDS).to_csv(tiv_path, index=False)
    table = _table(tmp_path)
    plain = read_design(table, IDS, covariates=["age"])
    adjusted = design_with_tiv(table, IDS, {"covariates": ["age", "tiv"],
                                            "computable": ("tiv",)}, tiv_path)
    assert np.allclose(adjusted.covariates["tiv"], list(read_tiv(tiv_path).values()))
    keep = {2: "Left-Cerebral-White-Matter", 17: "Left-Hippocampus", 53: "Right-Hippocampus"}
    volumes = native_volumes(labels, plain, keep)
    without, with_tiv = (structure_tests(volumes, d).set_index("structure")
                         for d in (plain, adjusted))
    print(pd.DataFrame({"q without": without["q"], "q with tiv": with_tiv["q"]}))
    assert without["significant"].all() and (without["percent_difference"] > 8).all()
    assert not with_tiv["significant"].any()

    rng = np.random.default_rng(7)
    noise = np.stack([ndimage.gaussian_filter(rng.normal(size=SHAPE), 1.5) for _ in IDS])
    logj = 0.03 * noise / noise.std() + 3.0 * np.log(scales)[:, None, None, None]
    mask = np.zeros(SHAPE, bool)
    mask[2:-2, 2:-2, 2:-2] = True
    mask_path = save_volume(mask.astype(np.uint8), AFFINE, tmp_path / "template_mask.nii.gz")
    jacobians = [save_volume(np.exp(m), AFFINE, tmp_path / f"j{i}.nii.gz")
                 for i, m in enumerate(logj)]
    counts = [voxelwise_tbm(jacobians, mask_path, design, fwhm_mm=4.0, permutations=200,
                            seed=3).summary["significant_voxels"] for design in (plain, adjusted)]
    inner = int(ndimage.binary_erosion(mask, iterations=1).sum())
    print(f"significant voxels without / with tiv: {counts} of {inner}")
    assert counts[0] > 0.5 * inner and counts[1] == 0
