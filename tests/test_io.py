"""Reading volumes and label maps: one read of the file, the same values as nibabel's float path."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from nir.errors import NirInputError
from nir.spatial.io import load_labels, load_volume, save_volume


def _write(path, data, slope=None, inter=0.0):
    img = nib.Nifti1Image(data, np.diag([1.0, 1.2, 0.9, 1.0]))
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    nib.save(img, str(path))
    return path


@pytest.mark.parametrize("dtype,slope", [(np.uint8, None), (np.int16, 0.37), (np.float64, None),
                                         (np.float32, 3.0)])
def test_load_volume_equals_nibabel_float32(tmp_path, dtype, slope):
    rng = np.random.default_rng(0)
    data = (rng.random((5, 6, 7)) * 200).astype(dtype)
    for name in ("img.nii", "img.nii.gz"):
        path = _write(tmp_path / name, data, slope)
        vol = load_volume(path)
        expected = nib.load(str(path)).get_fdata(dtype=np.float32)
        assert vol.data.is_contiguous() and vol.data.dtype.is_floating_point
        np.testing.assert_array_equal(vol.data.numpy(), expected)


def test_load_labels_takes_integer_maps_as_stored_and_rounds_float_maps(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 60, (6, 5, 4))
    labels[0, 0, 0] = 20_000_001  # beyond float32's integers: exact when stored as integers
    exact = load_labels(_write(tmp_path / "int32.nii.gz", labels.astype(np.int32)))
    assert exact.data.is_contiguous() and exact.data.numpy().dtype == np.int64
    np.testing.assert_array_equal(exact.data.numpy(), labels)
    small = labels.copy()
    small[0, 0, 0] = 7
    for name, data, slope in (("u8.nii", small.astype(np.uint8), None),
                              ("f32.nii.gz", small.astype(np.float32) + 1e-7, None),
                              ("scaled.nii.gz", small.astype(np.int16), 2.0)):
        vol = load_labels(_write(tmp_path / name, data, slope))
        np.testing.assert_array_equal(vol.data.numpy(), small * (slope or 1))
    with pytest.raises(NirInputError, match="non-integer"):
        load_labels(_write(tmp_path / "half.nii.gz", small.astype(np.float32) + 0.5))
    with pytest.raises(NirInputError, match="all zero"):
        load_labels(_write(tmp_path / "zero.nii.gz", np.zeros((4, 4, 4), np.int16)))


def test_truncated_data_is_unreadable(tmp_path):
    noise = np.random.default_rng(2).random((20, 20, 20)).astype(np.float32)
    path = _write(tmp_path / "img.nii.gz", noise)
    path.write_bytes(path.read_bytes()[:-2000])  # the header still reads, the voxels do not
    assert nib.load(str(path)).shape == noise.shape
    for load in (load_volume, load_labels):
        with pytest.raises(NirInputError, match="unreadable"):
            load(path)


def test_written_gz_is_a_standard_gzip_of_the_nifti_and_smaller_for_a_background(tmp_path):
    data = np.zeros((40, 30, 20, 1, 3), np.float32)
    data[10:30, 5:25, 5:15] = np.random.default_rng(3).normal(size=(20, 20, 10, 1, 3))
    affine = np.diag([1.0, 1.2, 0.9, 1.0])
    for name in ("warp.nii.gz", "warp.nii"):
        save_volume(data, affine, tmp_path / name, intent="vector")
    plain = (tmp_path / "warp.nii").read_bytes()
    packed = (tmp_path / "warp.nii.gz").read_bytes()
    assert gzip.decompress(packed) == plain  # any gzip reader sees the same NIfTI bytes
    assert len(packed) < 0.5 * len(plain)
    img = nib.load(str(tmp_path / "warp.nii.gz"))
    np.testing.assert_array_equal(np.asarray(img.dataobj), data)
    np.testing.assert_allclose(img.affine, affine, atol=1e-6)
