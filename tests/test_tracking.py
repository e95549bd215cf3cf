"""Convergence records (track_every): where they fall, what they measure, and that they change
nothing about the registration."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from nir.cli import main
from nir.engine.params import load_params
from nir.engine.register import register
from nir.engine.tracking import tracker_for
from nir.errors import NirInputError
from nir.evaluation.labels import parse_label_set
from nir.spatial.io import Volume
from tests.test_recovery import _pair

# 12 coarse + 7 fine iterations: records every 4 fall in both phases, the last one off the grid
FAST = {"coarse_iterations": 12, "iterations": 7, "downsize_spacing_mm": 3.0}
BANDS = (0.3, 0.6, 0.9)  # intensity bands of the phantom -> labels 1, 2, 3


def _labels(image: Volume) -> Volume:
    """Intensity bands of a phantom image as a label map that deforms with it."""
    bands = np.digitize(image.data.numpy(), BANDS).astype(np.int64)
    return Volume(torch.from_numpy(bands), image.affine, image.header)


@pytest.fixture(scope="module")
def labelled_pair() -> tuple[Volume, Volume, Volume, Volume]:
    fixed, moving, _, _ = _pair()
    return fixed, moving, _labels(fixed), _labels(moving)


def test_records_fall_every_n_iterations(labelled_pair) -> None:
    fixed, moving, fixed_labels, moving_labels = labelled_pair
    params = load_params(**FAST, track_every=4)
    tracker = tracker_for(params, fixed_labels, moving_labels)  # every label present
    tracked = register(fixed, moving, params, seed=2, progress=False, tracker=tracker)

    records = tracker.records
    assert [r["iteration"] for r in records] == [0, 4, 8, 12, 16, 19]
    assert [r["phase"] for r in records] == ["start"] + ["coarse"] * 3 + ["fine"] * 2
    seconds = [r["seconds"] for r in records]
    assert seconds == sorted(seconds)
    assert seconds[-1] <= tracked.seconds["fit"] + 1e-3  # records are rounded to 1 ms
    assert tracked.seconds["tracking"] == pytest.approx(tracker.overhead) and tracker.overhead > 0
    assert records[0]["folding_percent"] == 0.0  # the identity
    assert records[-1]["mean_dice"] > records[0]["mean_dice"] + 0.05
    # the last record scores exactly the deformation that is returned
    dice, folding = tracker.score(tracked.displacement)
    assert (records[-1]["mean_dice"], records[-1]["folding_percent"]) == (
        round(dice, 6), round(folding, 6))


def test_tracking_needs_both_label_maps(labelled_pair) -> None:
    _, _, fixed_labels, _ = labelled_pair
    assert tracker_for(load_params(**FAST), None, None) is None  # off: nothing needed
    with pytest.raises(NirInputError, match="--fixed-labels"):
        tracker_for(load_params(**FAST, track_every=5), fixed_labels, None)
    with pytest.raises(NirInputError, match="none of"):
        tracker_for(load_params(**FAST, track_every=5), fixed_labels, fixed_labels,
                    partial(parse_label_set, "17,53"))
    with pytest.raises(NirInputError, match="track_every"):
        load_params(track_every=-1)


def _save(volume: Volume, path: Path) -> Path:
    data = volume.data.numpy()
    nib.save(nib.Nifti1Image(data.astype(np.int32) if data.dtype == np.int64 else data,
                             volume.affine), str(path))
    return path


def _warp(prefix: Path) -> np.ndarray:
    return np.asarray(nib.load(f"{prefix}_warp.nii.gz").dataobj)


def test_register_command_records_what_evaluate_measures_and_changes_nothing(
        labelled_pair, tmp_path: Path, capsys) -> None:
    fixed, moving, fixed_labels, moving_labels = labelled_pair
    files = {name: _save(v, tmp_path / f"{name}.nii.gz") for name, v in
             (("fixed", fixed), ("moving", moving), ("fixed_labels", fixed_labels),
              ("moving_labels", moving_labels))}
    config = tmp_path / "params.yaml"
    config.write_text(yaml.safe_dump(FAST))
    pair = ["--fixed", str(files["fixed"]), "--moving", str(files["moving"]),
            "--moving-labels", str(files["moving_labels"]), "--quiet", "--device", "cpu"]
    with_labels = ["--fixed-labels", str(files["fixed_labels"]), "--labels-set", "all"]

    # off (the default, even with --fixed-labels given) against on: bit-identical warps
    assert main(["register", *pair, *with_labels, "--config", str(config),
                 "--out", str(tmp_path / "a")]) == 0
    assert main(["register", *pair, *with_labels, "--config", str(config), "--track-every", "3",
                 "--out", str(tmp_path / "c")]) == 0
    assert main(["register", *pair, "--config", str(config), "--track-every", "3",
                 "--out", str(tmp_path / "d")]) == 2
    assert "track_every needs --fixed-labels" in capsys.readouterr().err
    assert not list(tmp_path.glob("d_*"))

    assert np.array_equal(_warp(tmp_path / "a"), _warp(tmp_path / "c"))
    summaries = {k: json.loads((tmp_path / f"{k}_summary.json").read_text()) for k in "ac"}
    assert "convergence" not in summaries["a"]
    assert summaries["a"]["parameters"]["track_every"] == 0
    convergence = summaries["c"]["convergence"]
    assert [r["iteration"] for r in convergence["records"]] == [0, 3, 6, 9, 12, 15, 18, 19]
    assert convergence["every"] == 3 and convergence["labels"] == [1, 2, 3]
    assert summaries["c"]["seconds_by_stage"]["tracking"] == convergence["tracking_seconds"]

    # the last record is what nir evaluate finds in the written outputs
    assert main(["evaluate", "--fixed-labels", str(files["fixed_labels"]),
                 "--moving-labels", str(files["moving_labels"]),
                 "--warped-labels", str(tmp_path / "c_warped_labels.nii.gz"),
                 "--jacobian", str(tmp_path / "c_jacobian.nii.gz"), "--pair", "m_to_f",
                 "--method", "nir", "--labels-set", "all", "--out", str(tmp_path / "c.csv")]) == 0
    rows = pd.read_csv(tmp_path / "c.csv")
    after = rows[(rows["stage"] == "after") & (rows["structure"] == "all")].set_index("metric")
    before = rows[(rows["stage"] == "before") & (rows["structure"] == "all")].set_index("metric")
    first, last = convergence["records"][0], convergence["records"][-1]
    assert last["mean_dice"] == pytest.approx(after.loc["mean_dice", "value"], abs=1e-6)
    assert last["folding_percent"] == pytest.approx(after.loc["folding_percent", "value"],
                                                    abs=1e-6)
    assert first["mean_dice"] == pytest.approx(before.loc["mean_dice", "value"], abs=1e-6)

    # the Fig 5 slices: one per record, the last one a slice of the written outputs
    assert not (tmp_path / "a_convergence.npz").exists()
    with np.load(tmp_path / "c_convergence.npz") as slices:
        assert slices["iteration"].tolist() == [r["iteration"] for r in convergence["records"]]
        assert slices["mean_dice"].tolist() == [r["mean_dice"] for r in convergence["records"]]
        axis, index = int(slices["axis"]), int(slices["index"])
        warped = np.asarray(nib.load(tmp_path / "c_warped.nii.gz").dataobj)
        detj = np.asarray(nib.load(tmp_path / "c_jacobian.nii.gz").dataobj)
        np.testing.assert_allclose(slices["warped"][-1], np.take(warped, index, axis),
                                   atol=1e-5)
        np.testing.assert_allclose(slices["detj"][-1], np.take(detj, index, axis), atol=1e-6)
        assert slices["warped"].shape[0] == len(convergence["records"])
        assert not np.allclose(slices["warped"][0], slices["warped"][-1])
