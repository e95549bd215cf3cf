"""Shared fixtures: tiny NIfTI writers and the location of the real cohort."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

SHARED_COHORT = Path(__file__).resolve().parents[2] / "shared" / "data" / "fs-cohort"


def worker_threads() -> int | None:
    """Threads per pytest-xdist worker, each its share of this process's cores (at least one);
    None when not under xdist with two or more workers."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    return max(1, cores // workers)


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, give each worker its share of the cores for torch and OpenMP.

    Two workers with torch's default (every core each) oversubscribe the machine, and OpenMP
    threads waiting at a barrier for a descheduled peer slow a fit several times over (a real
    pair: 38 s alone, 210 s beside a workflow test). Subprocesses inherit OMP_NUM_THREADS;
    ``nir ... --threads`` and Snakemake's jobs still set their own.
    """
    share = worker_threads()
    if share is not None:
        torch.set_num_threads(share)
        os.environ["OMP_NUM_THREADS"] = str(share)


@pytest.fixture
def write_nifti(tmp_path: Path):
    """Write an array with an affine to tmp_path/name and return the path."""

    def _write(name: str, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
        path = tmp_path / name
        nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine),
                 str(path))
        return path

    return _write


@pytest.fixture(scope="session")
def real_cohort() -> Path:
    """The six-subject FreeSurfer cohort in ../shared, or skip."""
    if not SHARED_COHORT.exists():
        pytest.skip(f"real data absent: {SHARED_COHORT} (../shared/data/fs-cohort) not found")
    return SHARED_COHORT


@pytest.fixture(scope="session")
def ants_venv(tmp_path_factory) -> Path:
    """An antspyx environment built by ``nir ants-env`` (NIR_TEST_ANTS_VENV reuses one)."""
    from nir.baselines.ants_syn import ENV_MARKER, create_env

    given = os.environ.get("NIR_TEST_ANTS_VENV")
    if given and (Path(given) / ENV_MARKER).exists():
        return Path(given)
    venv = tmp_path_factory.mktemp("ants") / "venv"
    create_env(venv)
    return venv
