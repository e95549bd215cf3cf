"""`make setup`: torch comes from TORCH_INDEX_URL when given, else from pip's configured index
(`make -n`: the commands are printed, none is run)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def pip_installs(*args: str) -> list[str]:
    """The `pip install` commands `make setup` would run with ``args``."""
    try:
        done = subprocess.run(["make", "-n", "-B", "-C", str(ROOT), "setup", *args],
                              capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("make not installed")
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if "pip install" in line]


@pytest.mark.parametrize("locked", ["0", "1"])
def test_torch_index_is_the_configured_one_unless_given(locked: str) -> None:
    default = pip_installs(f"LOCKED={locked}")
    torch = [line for line in default if "torch==2.13.0" in line]
    assert len(torch) == 1 and "--index-url" not in torch[0], default
    given = pip_installs(f"LOCKED={locked}", f"TORCH_INDEX_URL={CPU_INDEX}")
    torch = [line for line in given if "torch==2.13.0" in line]
    assert len(torch) == 1 and f"--index-url {CPU_INDEX} " in torch[0], given
    # only torch comes from that index; everything else from the configured one
    assert [line for line in given if "--index-url" in line] == torch
    assert given.index(torch[0]) < next(i for i, line in enumerate(given) if "-e " in line)
