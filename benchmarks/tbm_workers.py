"""Seconds of the voxelwise TBM test with TFCE in 1 and in N processes (``workers``).

Twelve synthetic smoothed log det J maps (6 + 6, an age covariate, a loss planted in a ball) on
the demo's 2 mm grid (80 x 96 x 112) in an ellipsoid mask of about the demo's brain size are
written to a temporary folder and tested with ``nir.stats.tbm.voxelwise_tbm`` (TFCE, 1,000
permutations by default), once per process count. Prints a Markdown table with each run's
seconds as a ratio to the one-process run of the same invocation, and checks that every map is
the one-process map, bit for bit.

    python benchmarks/tbm_workers.py                  # 1 and 2 processes
    python benchmarks/tbm_workers.py --workers 2 4 --permutations 500
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nir.markdown import markdown_table  # noqa: E402
from nir.stats.tbm import voxelwise_tbm  # noqa: E402
from nir.study.design import Design  # noqa: E402
from tests.group_maps import jacobian_cohort, two_groups  # noqa: E402

SHAPE = (80, 96, 112)  # on group_maps' 2 mm grid
SEMI_AXES = (34, 41, 46)  # voxels: an ellipsoid of about 0.27 million voxels, 2.1 litres
SUBJECTS = 12


def synthetic_cohort(folder: Path, seed: int = 0) -> tuple[list[Path], Path, Design]:
    """Write the mask and 12 det J maps (the second six with a 10 % loss in a 6-voxel ball)."""
    rng = np.random.default_rng(seed)
    grid = np.indices(SHAPE, dtype=np.float64)
    centre = [(n - 1) / 2 for n in SHAPE]
    mask = sum(((g - c) / a) ** 2 for g, c, a in zip(grid, centre, SEMI_AXES, strict=True)) <= 1
    ball = sum((g - c - 10) ** 2 for g, c in zip(grid, centre, strict=True)) <= 36
    age = rng.uniform(55, 75, SUBJECTS)
    logj = np.stack([0.04 * ndimage.gaussian_filter(rng.normal(size=SHAPE), 2.0) / 0.05
                     + 0.002 * (age[i] - 65)
                     + np.where(ball & (i >= SUBJECTS // 2), np.log(0.9), 0.0)
                     for i in range(SUBJECTS)])
    paths, mask_path = jacobian_cohort(folder, logj, mask)
    return paths, mask_path, two_groups(SUBJECTS // 2, age)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2],
                        help="process counts to time besides 1 (default: 2)")
    parser.add_argument("--permutations", type=int, default=1000)
    args = parser.parse_args(argv)
    rows, reference, maps = [], None, None
    with tempfile.TemporaryDirectory() as tmp:
        jacobians, mask, design = synthetic_cohort(Path(tmp))
        for workers in [1, *args.workers]:
            start = time.perf_counter()
            result = voxelwise_tbm(jacobians, mask, design, permutations=args.permutations,
                                   workers=workers)
            seconds = time.perf_counter() - start
            reference = reference or seconds
            maps = maps or result.maps
            same = all(np.array_equal(maps[k], result.maps[k]) for k in maps)
            rows.append([str(workers), f"{seconds:.1f}", f"{seconds / reference:.2f}",
                         "yes" if same else "NO", str(result.summary["significant_voxels"])])
            print(f"{workers} process(es): {seconds:.1f} s", flush=True)
    print("\n".join(markdown_table(["processes", "seconds", "x one process",
                                    "maps equal to one process's", "significant voxels"],
                                   rows)))
    return 0 if all(row[3] == "yes" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
