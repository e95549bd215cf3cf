"""Snakemake wrapper: the t-map slices, the glass brain of the clusters and the per-structure
effect sizes (nir.stats.figures)."""

import json
import os
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pandas as pd

from nir.stats.figures import effect_size_figure, glass_figure, tmap_figure, write_figure
from nir.stats.tbm import map_paths

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
with open(sm.log[0], "w") as log, redirect_stdout(log), redirect_stderr(log):
    out_dir = os.path.dirname(sm.output[0])
    summary = json.loads(Path(sm.input.summary).read_text())
    maps = map_paths(sm.input.maps)
    write_figure(tmap_figure(maps["t"], maps["significant"], sm.input.template, summary),
                 out_dir, "tbm_tmap")
    clusters = pd.read_csv(sm.input.clusters)
    write_figure(glass_figure(maps["t"], maps["significant"], summary, clusters), out_dir,
                 "tbm_glass")
    tests = pd.read_csv(sm.input.tests)
    write_figure(effect_size_figure(tests, summary["q"]), out_dir, "tbm_effect_sizes")
