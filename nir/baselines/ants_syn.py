"""ANTs SyN as a baseline: a separate antspyx environment and ``nir register``-style outputs.

antspyx pins numpy and scipy below what the main environment uses, so it lives in its own
virtual environment (:func:`create_env`), built only when a workflow configures an ANTs method.
:func:`register_ants` runs :mod:`nir.baselines.ants_runner` with that environment's Python,
then writes exactly the files ``nir register`` writes (warped image and labels, ITK warp, det J
map, summary JSON) with this package's code, so both methods are warped and scored alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nir.engine.pair import brain_folding, load_pair, output_paths, warp_storage, write_outputs
from nir.errors import NirInputError, NirRunError
from nir.spatial.displacement import load_warp
from nir.spatial.io import load_labels, same_grid
from nir.study.methods import DEFAULT_TRANSFORM, check_transform
from nir.summary import versions, write_json

ANTSPYX_REQUIREMENT = "antspyx==0.6.3"
RUNNER = Path(__file__).with_name("ants_runner.py")
ENV_MARKER = "nir-ants-env.json"


def env_python(venv: str | Path) -> Path:
    """The Python interpreter of the antspyx environment at ``venv``."""
    return Path(venv) / "bin" / "python"


def create_env(venv: str | Path, requirement: str = ANTSPYX_REQUIREMENT) -> dict[str, str]:
    """Create (or complete) a virtual environment at ``venv`` holding antspyx.

    The marker file ``venv/nir-ants-env.json`` is written last, so it exists only for a
    finished environment.  Needs the package registry; run it where the network is.
    """
    venv = Path(venv)
    marker = venv / ENV_MARKER
    marker.unlink(missing_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(env_python(venv)), "-m", "pip", "install", "--quiet", requirement],
                   check=True)
    probe = "import ants, importlib.metadata as m; print(m.version('antspyx'))"
    version = subprocess.run([str(env_python(venv)), "-c", probe], check=True,
                             capture_output=True, text=True).stdout.strip()
    info = {"requirement": requirement, "antspyx": version, "python": str(env_python(venv))}
    write_json(info, marker)
    return info


def _run_ants(python: Path, fixed: Path, moving: Path, transform: str, seed: int,
              threads: int | None, work: Path) -> dict[str, Any]:
    env = dict(os.environ)
    if threads is not None:
        env["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)
    cmd = [str(python), "-I", str(RUNNER), "--fixed", str(fixed), "--moving", str(moving),
           "--transform", transform, "--seed", str(seed), "--out-dir", str(work)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        how = (f"was killed by signal {-done.returncode}" if done.returncode < 0
               else f"failed (exit {done.returncode}): {tail[0]}")
        raise NirRunError(f"ANTs registration of {moving} onto {fixed} {how}")
    return json.loads((work / "info.json").read_text())


def register_ants(fixed: str | Path, moving: str | Path, out_prefix: str | Path,
                  python: str | Path, transform: str = DEFAULT_TRANSFORM,
                  moving_labels: str | Path | None = None, seed: int = 0,
                  threads: int | None = None, fixed_labels: str | Path | None = None,
                  warp_dtype: str = "float32") -> dict[str, Any]:
    """Register ``moving`` onto ``fixed`` with ANTs and write ``nir register``'s outputs.

    ``python`` is the antspyx environment's interpreter.  Inputs are validated before ANTs
    runs; a summary of an earlier run is then removed, and the outputs appear together with
    the summary last (as in :func:`nir.engine.pair.register_files`, also for ``fixed_labels``
    and ``warp_dtype``).  ``seconds`` in the summary is the whole call,
    ``seconds_by_stage.registration`` ANTs' own registration time.
    """
    start = time.perf_counter()
    check_transform(transform)
    python = Path(python)
    if not python.exists():
        raise NirInputError(python, "no antspyx environment here; create it with "
                                    "`nir ants-env --venv DIR`")
    fixed_v, moving_v, labels_v = load_pair(fixed, moving, moving_labels)
    fixed_labels_v = load_labels(fixed_labels, like=fixed_v) if fixed_labels else None
    paths = output_paths(out_prefix, labels_v is not None)
    paths["warp"].parent.mkdir(parents=True, exist_ok=True)
    paths["summary"].unlink(missing_ok=True)  # no stale "complete" marker beside new outputs
    with tempfile.TemporaryDirectory(prefix=".ants-", dir=paths["warp"].parent) as tmp:
        info = _run_ants(python, Path(fixed), Path(moving), transform, seed, threads,
                         Path(tmp))
        displacement, warp_affine, _ = load_warp(Path(tmp) / "warp.nii.gz")
    if not same_grid(displacement.shape[:3], warp_affine, fixed_v.shape, fixed_v.affine):
        raise NirRunError(f"ANTs returned a warp off the fixed grid of {fixed}")
    t0 = time.perf_counter()
    detj = write_outputs(fixed_v, moving_v, labels_v, displacement, paths,
                         warp_dtype=warp_dtype)
    summary = {
        "fixed": str(fixed), "moving": str(moving),
        "moving_labels": None if moving_labels is None else str(moving_labels),
        "fixed_labels": None if fixed_labels is None else str(fixed_labels),
        "outputs": {k: str(v) for k, v in paths.items()},
        "method": "ants", "transform": transform, "seed": seed, "device": "cpu",
        "threads": info["threads"],
        "seconds": round(time.perf_counter() - start, 3),
        "seconds_by_stage": {"registration": info["registration_seconds"],
                             "write_outputs": round(time.perf_counter() - t0, 3)},
        "peak_rss_mb": info["peak_rss_mb"],
        **brain_folding(detj, fixed_v, fixed_labels_v),
        **warp_storage(displacement, warp_dtype),
        "versions": {**versions(), **info["versions"]},
    }
    write_json(summary, paths["summary"])
    return summary
