"""The command line: every verb's help renders (argparse formats help text lazily)."""

from __future__ import annotations

import pytest

from nir.cli import COMMANDS, main


@pytest.mark.parametrize("argv", [["--help"], *[[name, "--help"] for name in COMMANDS]])
def test_help_renders(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    assert "usage: nir" in capsys.readouterr().out
