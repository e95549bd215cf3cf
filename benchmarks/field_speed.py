"""Seconds per fitting iteration of the continuous field (the paper's NIR) against the lattice
field (this package's fast engine), per sampler and field type, at each thread count.

For every combination it runs ``nir.engine.register.register`` on one real aligned160 pair
(1 mm, 160x192x224) with a few iterations and reports the seconds per iteration of the fit
(sampling, field, interpolation, loss and backward: the iteration's own parts, not start-up)
and the seconds of the full-grid inference, with the continuous / lattice ratio measured in the
same run. Both engines get the same parameters apart from ``field``; the network sizes are the
package defaults unless ``--paper-sizes`` picks those of the ``paper`` preset.

    python benchmarks/field_speed.py                       # 1 and 2 threads, CPU
    python benchmarks/field_speed.py --threads 2 --samplers minipatch --iterations 5
    python benchmarks/field_speed.py --device cuda         # the GPU path, when present
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch

from nir.device import resolve_device
from nir.engine.params import PRESETS, load_params
from nir.engine.register import register
from nir.spatial.io import load_volume

ROOT = Path(__file__).resolve().parents[1]
COHORT = ROOT.parent / "shared" / "data" / "fs-cohort" / "derivatives" / "aligned160"
SAMPLERS = ("downsize", "minipatch", "random")
MODES = ("displacement", "velocity")
SIZE_KEYS = ("fourier_features", "hidden", "layers", "omega0", "omega0_hidden",
             "downsize_spacing_mm", "patches", "patch_size", "random_points", "ode_method",
             "ode_steps")


def image(subject: str) -> Path:
    """The aligned160 T1w of ``subject``."""
    return COHORT / subject / "anat" / f"{subject}_space-MNI305_desc-brain_T1w.nii.gz"


def time_one(fixed, moving, field: str, sampler: str, mode: str, iterations: int,
             device: torch.device, sizes: dict) -> dict:
    """Seconds per iteration and of inference of one engine/sampler/mode."""
    params = load_params(field=field, sampler=sampler, mode=mode, iterations=iterations,
                         **sizes)
    start = time.perf_counter()
    result = register(fixed, moving, params, seed=0, device=device, progress=False)
    wall = time.perf_counter() - start
    log = result.phases["fine"]
    per_iteration = sum(log.seconds.values()) / max(len(log.loss), 1)
    return {"field": field, "sampler": sampler, "mode": mode,
            "s_per_iteration": per_iteration, "inference_s": result.seconds["inference"],
            "wall_s": wall, **{f"{k}_s": v / max(len(log.loss), 1)
                               for k, v in log.seconds.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", default="sub-02:sub-01", help="MOVING:FIXED of aligned160")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--samplers", nargs="+", choices=SAMPLERS, default=list(SAMPLERS))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--paper-sizes", action="store_true",
                        help="network and batch sizes of the paper preset, for both fields")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "field_speed")
    args = parser.parse_args()
    if not COHORT.exists():
        raise SystemExit(f"real data absent: {COHORT} not found")
    device = resolve_device(args.device)
    moving_id, fixed_id = args.pair.split(":")
    fixed, moving = load_volume(image(fixed_id)), load_volume(image(moving_id))
    sizes = ({k: v for k, v in PRESETS["paper"].items() if k in SIZE_KEYS}
             if args.paper_sizes else {})
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for sampler in args.samplers:
            for mode in args.modes:
                for field in ("lattice", "continuous"):
                    row = {"threads": threads, "device": str(device),
                           **time_one(fixed, moving, field, sampler, mode, args.iterations,
                                      device, sizes)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    table = pd.DataFrame(rows)
    wide = table.pivot_table(index=["threads", "sampler", "mode"], columns="field",
                             values=["s_per_iteration", "inference_s"])
    wide[("ratio", "iteration")] = (wide[("s_per_iteration", "continuous")]
                                    / wide[("s_per_iteration", "lattice")])
    wide[("ratio", "inference")] = (wide[("inference_s", "continuous")]
                                    / wide[("inference_s", "lattice")])
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "rows.csv", index=False)
    wide.columns = [f"{a} {b}" for a, b in wide.columns]
    markdown = wide.reset_index().to_markdown(index=False, floatfmt=".3f")
    (args.out / "summary.md").write_text(markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
