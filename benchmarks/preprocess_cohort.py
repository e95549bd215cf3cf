"""Benchmark ``nir preprocess`` on the fs-cohort: brain-mask Dice vs FreeSurfer, seconds per
subject, and pairwise aseg Dice after our affine alignment vs FreeSurfer's talairach alignment
(derivatives/aligned160). Usage: python benchmarks/preprocess_cohort.py [DATA] [OUTDIR]"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from nir.preprocess import preprocess_subject

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/fs-cohort"
STRUCTURES = (2, 3, 4, 5, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 26, 28,
              41, 42, 43, 44, 46, 47, 49, 50, 51, 52, 53, 54, 58, 60)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean arrays."""
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def mean_label_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Dice over the aseg structures present in either map."""
    scores = [dice(a == s, b == s) for s in STRUCTURES if (a == s).any() or (b == s).any()]
    return float(np.mean(scores))


def main(data: Path, out: Path) -> None:
    subjects = sorted(p.name for p in data.glob("sub-*") if p.is_dir())
    ours, talairach, rows = {}, {}, []
    for sub in subjects:
        fs = data / "derivatives/freesurfer" / sub / "anat"
        start = time.perf_counter()
        summary = preprocess_subject(data / sub / "anat" / f"{sub}_T1w.nii.gz", out / sub,
                                     labels=fs / f"{sub}_desc-aseg_dseg.nii.gz", device="cpu")
        seconds = time.perf_counter() - start
        mask_img = nib.load(f"{out / sub}_brainmask.nii.gz")
        mask = np.asarray(mask_img.dataobj) > 0
        voxel_ml = float(np.prod(mask_img.header.get_zooms()[:3])) / 1000.0
        ref = np.asarray(nib.load(fs / f"{sub}_desc-brain_T1w.nii.gz").dataobj) > 0
        ours[sub] = np.asarray(nib.load(f"{out / sub}_labels.nii.gz").dataobj)
        aligned = data / "derivatives/aligned160" / sub / "anat"
        talairach[sub] = np.asarray(
            nib.load(aligned / f"{sub}_space-MNI305_desc-aseg_dseg.nii.gz").dataobj)
        rows.append((sub, dice(mask, ref), mask.sum() * voxel_ml, ref.sum() * voxel_ml, seconds,
                     summary["affine_metric"]["value"], summary["seconds"]))
        print(f"done {sub}: {seconds:.1f} s", flush=True)
    print("\nsubject  mask_dice  ml_ours  ml_freesurfer  seconds  ncc    steps")
    for sub, d, ml, ml_ref, s, ncc, steps in rows:
        detail = " ".join(f"{k}={v:.1f}" for k, v in steps.items() if k != "total")
        print(f"{sub}   {d:.4f}     {ml:7.0f}  {ml_ref:13.0f}  {s:7.1f}  {ncc:.3f}  {detail}")
    print("\npair            ours    aligned160")
    pair_scores = []
    for a, b in itertools.combinations(subjects, 2):
        pair = (mean_label_dice(ours[a], ours[b]), mean_label_dice(talairach[a], talairach[b]))
        pair_scores.append(pair)
        print(f"{a}-{b}   {pair[0]:.4f}  {pair[1]:.4f}")
    mean = np.mean(pair_scores, axis=0)
    print(f"mean (n={len(pair_scores)})   {mean[0]:.4f}  {mean[1]:.4f}")
    masks = [r[1] for r in rows]
    times = [r[4] for r in rows]
    print(f"mask Dice min {min(masks):.4f} mean {np.mean(masks):.4f}; "
          f"seconds max {max(times):.1f} mean {np.mean(times):.1f}")


if __name__ == "__main__":
    data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATA
    out_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("results/preprocess_benchmark")
    main(data_dir, out_dir)
