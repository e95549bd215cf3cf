"""Snakemake wrapper: sharpness, bias and group-wise Dice of a round (nir.study.template_steps)."""

from contextlib import redirect_stderr, redirect_stdout

from nir.study.template_steps import write_round

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
with open(sm.log[0], "w") as log, redirect_stdout(log), redirect_stderr(log):
    write_round(sm.input.template, sm.input.warps, sm.input.warped_labels, sm.params.iteration,
                sm.output[0])
