"""Benchmark NIR on real aligned160 pairs at the full 1 mm grid.

For each pair, mode and sampler it runs ``nir register`` in a fresh process and reports mean
Dice over the main aseg structures before and after, % of brain voxels with det J <= 0, SDlogJ,
seconds, peak RSS and where the fitting time went.  Seconds are also given as a ratio to a
fixed reference workload timed in the same run (a SIREN forward/backward pass), so numbers
from different machines or loads can be compared.

    python benchmarks/register_pairs.py --pairs sub-02:sub-01 sub-04:sub-03 --threads 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nir.io import load_labels, load_volume
from nir.labels import DEFAULT_STRUCTURES
from nir.metrics import dice_per_label, mean_dice, sdlogj

ROOT = Path(__file__).resolve().parents[1]
COHORT = ROOT.parent / "shared" / "data" / "fs-cohort" / "derivatives" / "aligned160"
REFERENCE = """
import time, torch
torch.set_num_threads({threads})
torch.manual_seed(0)
from nir.params import RegistrationParams
from nir.fields import NeuralField
f = NeuralField(RegistrationParams())
x = torch.rand(50000, 3) * 2 - 1
t = time.perf_counter()
for _ in range(20):
    f(x).square().mean().backward()
print(time.perf_counter() - t)
"""


def _path(subject: str, desc: str) -> Path:
    return COHORT / subject / "anat" / f"{subject}_space-MNI305_desc-{desc}.nii.gz"


def reference_seconds(threads: int) -> float:
    """Seconds for 20 forward/backward passes of the default field on 50k points."""
    out = subprocess.run([sys.executable, "-c", REFERENCE.format(threads=threads)],
                         check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def run_one(moving: str, fixed: str, mode: str, sampler: str, threads: int, out_dir: Path,
            extra: list[str]) -> dict:
    """Register moving onto fixed in a subprocess and score the result."""
    prefix = out_dir / f"{moving}_to_{fixed}_{mode}_{sampler}"
    cmd = [sys.executable, "-m", "nir", "register", "--fixed", str(_path(fixed, "brain_T1w")),
           "--moving", str(_path(moving, "brain_T1w")), "--moving-labels",
           str(_path(moving, "aseg_dseg")), "--out", str(prefix), "--mode", mode, "--sampler",
           sampler, "--threads", str(threads), "--device", "cpu", "--quiet", *extra]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - start
    summary = json.loads(Path(f"{prefix}_summary.json").read_text())
    fixed_labels = load_labels(_path(fixed, "aseg_dseg")).data.numpy()
    moving_labels = load_labels(_path(moving, "aseg_dseg")).data.numpy()
    warped = load_labels(f"{prefix}_warped_labels.nii.gz").data.numpy()
    detj = load_volume(f"{prefix}_jacobian.nii.gz").data.numpy()
    brain = fixed_labels > 0
    parts = {}
    for phase in summary["seconds_by_part"].values():
        for part, sec in phase.items():
            parts[part] = parts.get(part, 0.0) + sec
    return {
        "pair": f"{moving}_to_{fixed}", "mode": mode, "sampler": sampler,
        "dice_before": mean_dice(dice_per_label(moving_labels, fixed_labels, DEFAULT_STRUCTURES)),
        "dice_after": mean_dice(dice_per_label(warped, fixed_labels, DEFAULT_STRUCTURES)),
        "folded_pct": 100.0 * float((detj[brain] <= 0).mean()),
        "sdlogj": sdlogj(detj, brain),
        "seconds": summary["seconds"], "wall_seconds": wall,
        "peak_rss_mb": summary["peak_rss_mb"],
        **{f"s_{k}": v for k, v in parts.items()},
        **{f"s_{k}": v for k, v in summary["seconds_by_stage"].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=["sub-02:sub-01", "sub-04:sub-03",
                                                       "sub-06:sub-05"],
                        help="MOVING:FIXED subject pairs")
    parser.add_argument("--modes", nargs="+", default=["displacement", "velocity"])
    parser.add_argument("--samplers", nargs="+", default=["hybrid"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                        help="further arguments for nir register, e.g. --config p.yaml")
    args = parser.parse_args()
    if not COHORT.exists():
        sys.exit(f"real data absent: {COHORT}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    ref = reference_seconds(args.threads)
    rows = []
    for pair in args.pairs:
        moving, fixed = pair.split(":")
        for mode in args.modes:
            for sampler in args.samplers:
                row = run_one(moving, fixed, mode, sampler, args.threads, args.out_dir,
                              args.extra)
                row["seconds_over_reference"] = row["seconds"] / ref
                rows.append(row)
                print(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                  for k, v in row.items()}), flush=True)
    table = pd.DataFrame(rows)
    table["dice_gain"] = table["dice_after"] - table["dice_before"]
    table.to_csv(args.out_dir / "register_pairs.csv", index=False)
    cols = ["pair", "mode", "sampler", "dice_before", "dice_after", "dice_gain", "folded_pct",
            "sdlogj", "seconds", "seconds_over_reference", "peak_rss_mb"]
    print(f"\nreference workload: {ref:.2f} s")
    print(table[cols].round(4).to_string(index=False))
    means = table.groupby(["mode", "sampler"])[cols[3:]].mean(numeric_only=True)
    print(means.round(4).to_string())
    print(np.round(table.filter(like="s_").mean(), 2).to_string())


if __name__ == "__main__":
    main()
