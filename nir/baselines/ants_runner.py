"""Run one ANTs registration inside the separate antspyx environment.

This file is executed by that environment's Python (``python ants_runner.py ...``), so it
imports only antspyx and the standard library, never the rest of ``nir``.  It writes the
forward transform composed into one ITK displacement field on the fixed grid (the same
convention as ``nir register``'s ``PREFIX_warp.nii.gz``) and a JSON with its runtime, both into
an output folder that the caller owns (and turns into the final, atomically written outputs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from importlib import metadata


def run(fixed: str, moving: str, transform: str, seed: int, out_dir: str) -> dict:
    """Register ``moving`` onto ``fixed``; write ``warp.nii.gz`` and ``info.json`` to out_dir."""
    import ants
    import ants.config

    ants.config.set_ants_deterministic(on=False, seed_value=seed)  # seeds --random-seed
    fixed_img = ants.image_read(fixed)
    moving_img = ants.image_read(moving)
    start = time.perf_counter()
    result = ants.registration(fixed_img, moving_img, type_of_transform=transform,
                               outprefix=os.path.join(out_dir, "reg_"))
    seconds = time.perf_counter() - start
    composed = ants.apply_transforms(fixed_img, moving_img, result["fwdtransforms"],
                                     compose=os.path.join(out_dir, "fwd_"))
    os.replace(composed, os.path.join(out_dir, "warp.nii.gz"))
    info = {
        "transform": transform,
        "seed": seed,
        "registration_seconds": round(seconds, 3),
        "threads": int(os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "0")) or None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "versions": {"python": sys.version.split()[0], "antspyx": metadata.version("antspyx")},
    }
    with open(os.path.join(out_dir, "info.json"), "w") as handle:
        json.dump(info, handle, indent=2)
    return info


def main() -> int:
    """Command line used by :func:`nir.baselines.ants_syn.register_ants`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixed", required=True)
    parser.add_argument("--moving", required=True)
    parser.add_argument("--transform", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", required=True)
    args = parser.parse_args()
    run(args.fixed, args.moving, args.transform, args.seed, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
