"""Snakemake wrapper: the template's affine to MNI152 (nir.study.mni)."""

from contextlib import redirect_stderr, redirect_stdout

from nir.study.mni import write_mni_transform

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
with open(sm.log[0], "w") as log, redirect_stdout(log), redirect_stderr(log):
    print(write_mni_transform(sm.input.template, sm.output[0], sm.params.seed))
