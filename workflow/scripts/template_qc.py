"""Snakemake wrapper: the QC table and panels of the template's last round
(nir.study.template_qc)."""

from contextlib import redirect_stderr, redirect_stdout

from nir.study.template_qc import write_template_qc

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
with open(sm.log[0], "w") as log, redirect_stdout(log), redirect_stderr(log):
    table = write_template_qc(sm.input.template, sm.input.labels, sm.params.subjects,
                              sm.input.warped, sm.input.warped_labels, sm.output.table,
                              sm.output.markdown, sm.output.panels, sm.params.excluded)
    print(table.to_string(index=False))
