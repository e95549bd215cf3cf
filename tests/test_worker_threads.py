"""Under pytest-xdist every worker runs torch and OpenMP on its share of the cores
(tests/conftest.py), so that two workers do not oversubscribe the machine."""

from __future__ import annotations

import os

import pytest
import torch

from tests.conftest import thread_share


def test_worker_uses_its_share_of_the_cores() -> None:
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2:
        pytest.skip("not under pytest-xdist with two or more workers (make test runs it so)")
    share = thread_share(workers)
    assert torch.get_num_threads() == share
    assert os.environ["OMP_NUM_THREADS"] == str(share)
