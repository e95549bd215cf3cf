"""Snakemake wrapper: each subject's TIV from its native brain mask (nir.stats.volumes)."""

from contextlib import redirect_stderr, redirect_stdout

from nir.spatial.io import write_csv
from nir.stats.volumes import tiv_table

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
with open(sm.log[0], "w") as log, redirect_stdout(log), redirect_stderr(log):
    table = tiv_table(sm.input.masks, sm.params.subjects)
    write_csv(table, sm.output[0])
    print(table.to_string())
