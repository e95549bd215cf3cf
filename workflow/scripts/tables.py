"""Snakemake wrapper for ``nir tables``: every per-pair CSV of the run, passed in-process because
a cohort's list of CSVs can exceed the shell's limit on the length of one command."""

import sys
from contextlib import redirect_stderr, redirect_stdout

from nir.cli import main

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
with open(sm.log[0], "w") as log, redirect_stdout(log), redirect_stderr(log):
    table = getattr(sm.input, "label_table", None)  # evaluation.label_table, when configured
    option = ["--label-table", table] if table else []
    status = main(["tables", "--pairs", *sm.input.pairs, "--out-dir", sm.params.out_dir, *option])
sys.exit(status)
