"""Snakemake wrapper: the voxelwise GLM on the log-Jacobians (nir.stats.tbm)."""

from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from nir.stats.tbm import voxelwise_tbm, write_tbm
from nir.stats.volumes import design_with_tiv

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
with open(sm.log[0], "w") as log, redirect_stdout(log), redirect_stderr(log):
    # tiv: an input when the workflow computes the TIV
    design = design_with_tiv(sm.input.table, sm.params.subjects, sm.params.design,
                             getattr(sm.input, "tiv", None))
    result = voxelwise_tbm(sm.input.jacobians, sm.input.mask, design, sm.params.fwhm_mm,
                           sm.params.q, sm.params.correction, sm.params.permutations,
                           sm.params.variance_fwhm_mm, sm.params.seed, workers=sm.threads)
    write_tbm(result, sm.input.template, Path(sm.output.summary).parent, design.subjects,
              sm.output.logjac)
    print(result.summary)
