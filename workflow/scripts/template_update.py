"""Snakemake wrapper: the next template by the shape update (nir.study.template_steps)."""

from contextlib import redirect_stderr, redirect_stdout

from nir.study.template_steps import write_update

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
with open(sm.log[0], "w") as log, redirect_stdout(log), redirect_stderr(log):
    print(write_update(sm.input.images, sm.input.warps, sm.input.template, sm.output.template,
                       sm.output.summary))
