"""The benchmark's tables (the paired comparison with a reference revision, the subsets)
and its argument checks."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "register_pairs.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("register_pairs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows() -> pd.DataFrame:
    """Three pairs: one tuning + one held-out SyN pair, one more held-out pair; two methods."""
    rows = []
    for pair, subset, syn_pair, new, old in [("a_to_b", "tuning", True, 0.80, 0.70),
                                            ("c_to_d", "held-out", True, 0.78, 0.75),
                                            ("e_to_f", "held-out", False, 0.74, 0.76)]:
        for method, dice, folded in [("nir-default", new, 0.002),
                                     ("nir-default@old", old, 0.004)]:
            rows.append({"pair": pair, "set": subset, "syn_pair": syn_pair, "method": method,
                         "threads": 2, "seconds": 20.0, "peak_mb": 1000.0, "dice_before": 0.5,
                         "dice_after": dice, "hd95_after": 2.5, "folded_pct": folded,
                         "sdlogj": 0.4})
    return pd.DataFrame(rows)


def test_paired_compares_held_out_pairs_only(bench) -> None:
    table = bench.paired(_rows(), "nir-default@old").set_index("method")
    new = table.loc["nir-default"]
    assert new["pairs"] == 2  # the tuning pair is left out
    assert new["delta_mean"] == pytest.approx(((0.78 - 0.75) + (0.74 - 0.76)) / 2)
    assert new["delta_min"] == pytest.approx(-0.02)
    assert new["at_or_above"] == 1
    assert table.loc["nir-default@old", "delta_mean"] == 0.0
    text = bench.paired_markdown(table.reset_index(), "nir-default@old")
    assert "| nir-default | 2 | 0.7600 | +0.0050 | -0.0200 | 1 of 2 |" in text


def test_summary_keeps_syn_pairs_apart_from_every_pair(bench) -> None:
    table = bench.summarise(_rows())
    default = table[table["method"] == "nir-default"].set_index("pairs")
    assert default.loc["all", "n"] == 2  # the SyN pairs
    assert default.loc["all", "dice_after"] == pytest.approx(0.79)
    assert default.loc["held-out, every pair", "n"] == 2
    assert default.loc["held-out, every pair", "dice_after"] == pytest.approx(0.76)
    assert "| all | nir-default | 2 | 0.500 → 0.790 |" in bench.markdown(table)
    assert bench.markdown(table).count("| – |") >= 1  # no SyN rows: no time ratio


def test_cohort_pairs_are_every_ordered_pair(bench, tmp_path, monkeypatch) -> None:
    for subject in ("sub-01", "sub-02", "sub-03"):
        (tmp_path / subject).mkdir()
    monkeypatch.setattr(bench, "COHORT", tmp_path)
    pairs = bench.cohort_pairs()
    assert len(pairs) == 6 and len(set(pairs)) == 6
    assert "sub-02:sub-01" in pairs and "sub-01:sub-01" not in pairs


def test_syn_dice_beside_a_syn_run_is_refused() -> None:
    """An earlier run's SyN line next to this run's SyN would draw SyN twice, maybe apart."""
    done = subprocess.run([sys.executable, str(SCRIPT), "--syn-dice", "0.78"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "--syn-dice goes with --no-syn" in done.stderr
