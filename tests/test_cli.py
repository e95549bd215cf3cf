"""The command line: every verb's help renders (argparse formats help text lazily)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nir.cli import COMMANDS, main


@pytest.mark.parametrize("argv", [["--help"], *[[name, "--help"] for name in COMMANDS]])
def test_help_renders(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    assert "usage: nir" in capsys.readouterr().out


def test_the_executable_exits_with_mains_status_and_flushed_output(tmp_path: Path) -> None:
    """``nir`` skips the interpreter's teardown (:func:`nir.cli.entry`): its exit status and
    everything printed must still arrive, also when both streams go to a file."""
    nir = Path(sys.executable).parent / "nir"
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not a nifti")
    with open(tmp_path / "log", "w") as log:
        failed = subprocess.run([str(nir), "jacobian", "--warp", str(bad), "--out",
                                 str(tmp_path / "j.nii.gz")], stdout=log, stderr=log)
    assert failed.returncode == 2
    assert (tmp_path / "log").read_text().strip().splitlines() == [
        f"nir jacobian: error: {bad}: unreadable as a NIfTI warp (ImageFileError)"]
    shown = subprocess.run([str(nir), "--version"], capture_output=True, text=True)
    assert shown.returncode == 0 and shown.stdout.startswith("nir ")
    module = subprocess.run([sys.executable, "-m", "nir", "jacobian", "--help"],
                            capture_output=True, text=True)
    assert module.returncode == 0 and "usage: nir jacobian" in module.stdout
