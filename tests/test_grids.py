"""Inputs that must share the fixed grid are compared by shape *and* affine: ``nir evaluate``'s
det J map and mask, and the QC panel's warped image, det J map and warp. A file of the right
shape on another grid (shifted 5 mm here) gives one error naming it, and no output."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from nir.cli import main
from nir.errors import NirInputError
from nir.evaluation.qc_panel import qc_panel
from nir.spatial.displacement import save_warp

SHAPE = (12, 12, 10)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
SHIFTED = AFFINE.copy()
SHIFTED[0, 3] = 5.0  # the same shape, 5 mm to the right


def _save(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


@pytest.fixture
def pair(tmp_path) -> dict[str, Path]:
    """Labels, det J, mask, images and a warp of one pair, all on the fixed grid."""
    labels = np.zeros(SHAPE, np.int16)
    labels[2:8, 2:8, 2:8] = 17
    image = np.where(labels > 0, 1.0, 0.2).astype(np.float32)
    return {"labels": _save(tmp_path / "labels.nii.gz", labels),
            "detj": _save(tmp_path / "detj.nii.gz", np.ones(SHAPE, np.float32)),
            "mask": _save(tmp_path / "mask.nii.gz", (labels > 0).astype(np.uint8)),
            "image": _save(tmp_path / "image.nii.gz", image),
            "warp": save_warp(torch.zeros((*SHAPE, 3)), AFFINE,
                              tmp_path / "warp.nii.gz")}


def _elsewhere(path: Path) -> Path:
    """``path`` rewritten on the shifted grid (same data, same shape)."""
    img = nib.load(path)
    moved = nib.Nifti1Image(np.asarray(img.dataobj), SHIFTED, img.header)
    moved.set_sform(SHIFTED)
    moved.set_qform(SHIFTED)
    out = path.with_name(f"moved_{path.name}")
    nib.save(moved, str(out))
    return out


@pytest.mark.parametrize("kind", ["detj", "mask"])
def test_evaluate_refuses_a_map_on_another_grid(pair, kind, tmp_path, capsys) -> None:
    files = {**pair, kind: _elsewhere(pair[kind])}
    out = tmp_path / "pair.csv"
    assert main(["evaluate", "--fixed-labels", str(files["labels"]), "--moving-labels",
                 str(files["labels"]), "--warped-labels", str(files["labels"]), "--jacobian",
                 str(files["detj"]), "--mask", str(files["mask"]), "--pair", "a_to_b",
                 "--method", "nir", "--labels-set", "17", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(files[kind]) in err[0]
    assert "affine differs from the fixed labels' affine" in err[0], err
    assert not out.exists()
    # on the fixed grid the same call succeeds
    assert main(["evaluate", "--fixed-labels", str(pair["labels"]), "--moving-labels",
                 str(pair["labels"]), "--warped-labels", str(pair["labels"]), "--jacobian",
                 str(pair["detj"]), "--mask", str(pair["mask"]), "--pair", "a_to_b",
                 "--method", "nir", "--labels-set", "17", "--out", str(out)]) == 0


@pytest.mark.parametrize("kind", ["warped", "detj", "warp"])
def test_qc_panel_refuses_an_input_on_another_grid(pair, kind, tmp_path) -> None:
    files = {"warped": pair["image"], "detj": pair["detj"], "warp": pair["warp"]}
    files[kind] = _elsewhere(files[kind])
    out = tmp_path / "qc.png"
    with pytest.raises(NirInputError, match="affine differs from the fixed image affine") as err:
        qc_panel(pair["image"], pair["image"], files["warped"], files["detj"], files["warp"],
                 out)
    assert err.value.path == str(files[kind])
    assert not out.exists()
