"""Under pytest-xdist every worker runs torch and OpenMP on its share of the cores
(tests/conftest.py), so that two workers do not oversubscribe the machine."""

from __future__ import annotations

import os

import pytest
import torch

from tests.conftest import worker_threads


def test_worker_uses_its_share_of_the_cores() -> None:
    share = worker_threads()
    if share is None:
        pytest.skip("not under pytest-xdist with two or more workers (make test runs it so)")
    assert torch.get_num_threads() == share
    assert os.environ["OMP_NUM_THREADS"] == str(share)
