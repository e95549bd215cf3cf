"""Snakemake wrapper: per-structure volumes and their group test (nir.stats.volumes)."""

from contextlib import redirect_stderr, redirect_stdout

import pandas as pd

from nir.spatial.io import write_csv
from nir.stats.volumes import (
    design_with_tiv,
    jacobian_volumes,
    native_volumes,
    structure_tests,
)

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
with open(sm.log[0], "w") as log, redirect_stdout(log), redirect_stderr(log):
    # tiv: an input when the workflow computes the TIV
    design = design_with_tiv(sm.input.table, sm.params.subjects, sm.params.design,
                             getattr(sm.input, "tiv", None))
    warped = jacobian_volumes(sm.input.template_labels, sm.input.jacobians, design)
    kept = dict(zip(warped["label"], warped["structure"], strict=True))
    volumes = pd.concat([warped, native_volumes(sm.input.native, design, kept)])
    tests = structure_tests(volumes, design, sm.params.q)
    write_csv(volumes, sm.output.volumes)
    write_csv(tests, sm.output.tests)
    print(tests.to_string())
