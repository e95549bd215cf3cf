"""Snakemake wrapper: the iteration-0 template (nir.study.template_steps.write_initial)."""

from contextlib import redirect_stderr, redirect_stdout

from nir.study.template_steps import write_initial

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
with open(sm.log[0], "w") as log, redirect_stdout(log), redirect_stderr(log):
    write_initial(sm.input.images, sm.output[0], sm.params.initial, sm.params.ids)
