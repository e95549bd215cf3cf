"""Snakemake wrapper: the table of significant clusters (nir.stats.clusters)."""

from contextlib import redirect_stderr, redirect_stdout

from nir.stats.clusters import write_clusters
from nir.study.mni import read_mni_transform

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
with open(sm.log[0], "w") as log, redirect_stdout(log), redirect_stderr(log):
    table = write_clusters(sm.input.maps, sm.input.summary, sm.input.labels,
                           read_mni_transform(sm.input.mni), sm.output.table,
                           sm.output.markdown)
    print(table.to_string())
