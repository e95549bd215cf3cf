"""Snakemake wrapper: the per-iteration table and figure of the template build."""

import os
from contextlib import redirect_stderr, redirect_stdout

from nir.spatial.io import write_text
from nir.stats.figures import template_progress_figure, write_figure
from nir.study.template_steps import affine_dice, progress_table

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
with open(sm.log[0], "w") as log, redirect_stdout(log), redirect_stderr(log):
    table = progress_table(sm.input.rounds)
    affine = affine_dice(sm.input.labels)
    table["affine_groupwise_dice"] = round(affine, 4)
    write_text(table.to_csv(sep="\t", index=False), sm.output.table)
    figure_dir = os.path.dirname(sm.output.figures[0])
    write_figure(template_progress_figure(table, affine), figure_dir, "template_progress")
    print(table.to_string())
