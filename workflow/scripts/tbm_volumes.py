"""Snakemake wrapper: per-structure volumes and their group test (nir.stats.volumes)."""

from contextlib import redirect_stderr, redirect_stdout

import pandas as pd

from nir.spatial.io import write_csv
from nir.stats.volumes import jacobian_volumes, native_volumes, read_tiv, structure_tests
from nir.study.design import read_design

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
with open(sm.log[0], "w") as log, redirect_stdout(log), redirect_stderr(log):
    tiv = getattr(sm.input, "tiv", None)  # an input when the workflow computes the TIV
    computed = {"tiv": read_tiv(tiv)} if tiv else None
    design = read_design(sm.input.table, sm.params.subjects, **sm.params.design,
                         computed=computed)
    warped = jacobian_volumes(sm.input.template_labels, sm.input.jacobians, design)
    kept = dict(zip(warped["label"], warped["structure"], strict=True))
    volumes = pd.concat([warped, native_volumes(sm.input.native, design, kept)])
    tests = structure_tests(volumes, design, sm.params.q)
    write_csv(volumes, sm.output.volumes)
    write_csv(tests, sm.output.tests)
    print(tests.to_string())
