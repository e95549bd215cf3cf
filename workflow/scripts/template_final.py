"""Snakemake wrapper: the final template, its labels and brain mask (nir.study.template_steps)."""

from contextlib import redirect_stderr, redirect_stdout

from nir.study.template_steps import copy_file, write_final_labels

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
with open(sm.log[0], "w") as log, redirect_stdout(log), redirect_stderr(log):
    copy_file(sm.input.template, sm.output.template)
    write_final_labels(sm.input.template, sm.input.warped_labels, sm.output.labels,
                       sm.output.mask)
