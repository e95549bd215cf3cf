"""Snakemake wrapper for ``nir paper``: the registration summaries are passed in-process because a
cohort's list of them can exceed the shell's limit on the length of one command."""

import sys
from contextlib import redirect_stderr, redirect_stdout

from nir.cli import main

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
with open(sm.log[0], "w") as log, redirect_stdout(log), redirect_stderr(log):
    status = main(["paper", "--tables", sm.params.tables, "--summaries", *sm.input.summaries,
                   "--panels", *sm.input.panels, "--panel-pair", sm.params.panel_pair,
                   "--out-dir", sm.params.out_dir])
sys.exit(status)
