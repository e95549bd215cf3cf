"""SIGTERM (a scheduler's time limit) sent to a ``nir`` command once a given stage has started:
the command runs in a child process whose ``hook`` (Python run before ``nir.cli.main``)
touches the file ``marker`` when the stage begins."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

DRIVER = """
import sys, time
from pathlib import Path

marker = Path(sys.argv[1])
{hook}
from nir.cli import main
sys.exit(main(sys.argv[2:]))
"""

# every NIfTI takes 2 s more once written to its temporary file
SLOW_WRITE = textwrap.dedent("""
    from nir.spatial import io
    real_write = io.write_nifti

    def write_nifti(img, path):
        real_write(img, path)
        marker.touch()
        time.sleep(2)

    io.write_nifti = write_nifti
""")


def terminate(tmp_path: Path, hook: str, argv: list[str], out: Path,
              sig: signal.Signals = signal.SIGTERM) -> tuple[int, str, list[str]]:
    """Run ``nir argv`` with ``hook``; send it ``sig`` 0.3 s after the hook touched ``marker``.

    Returns the exit status, stderr and the names in ``out`` when the signal went.
    """
    driver, marker = tmp_path / "driver.py", tmp_path / "started"
    driver.write_text(DRIVER.format(hook=hook))
    process = subprocess.Popen([sys.executable, str(driver), str(marker), *argv],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the stage never started"
            time.sleep(0.05)
        time.sleep(0.3)
        present = sorted(p.name for p in out.iterdir())
        process.send_signal(sig)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    return process.returncode, err, present
