"""Snakemake wrapper: the t-map slices and the per-structure effect sizes (nir.stats.figures)."""

import json
import os
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pandas as pd

from nir.stats.figures import effect_size_figure, tmap_figure, write_figure

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
with open(sm.log[0], "w") as log, redirect_stdout(log), redirect_stderr(log):
    out_dir = os.path.dirname(sm.output[0])
    summary = json.loads(Path(sm.input.summary).read_text())
    write_figure(tmap_figure(sm.input.tmap, sm.input.template, summary), out_dir, "tbm_tmap")
    tests = pd.read_csv(sm.input.tests)
    write_figure(effect_size_figure(tests, summary["q"]), out_dir, "tbm_effect_sizes")
