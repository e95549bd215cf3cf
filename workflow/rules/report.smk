# Cohort tables, figures and QC panels; each is marked for `snakemake --report`.

rule tables:
    input:
        pairs=metrics_csvs(),
        **LABEL_TABLE_INPUT,
    output:
        [table_output(name) for name in TABLES],
    params:
        out_dir=folder_of("output"),
    log:
        f"{R}/logs/tables/tables.log",
    script:
        "../scripts/tables.py"


rule figures:
    input:
        [f"{R}/tables/{name}" for name in TABLES],
        **LABEL_TABLE_INPUT,
    output:
        [figure_output(name, ext) for name in FIGURES for ext in FIGURE_FORMATS],
    params:
        tables=folder_of("input"),
        out_dir=folder_of("output"),
    log:
        f"{R}/logs/figures/figures.log",
    shell:
        "nir figures --tables {params.tables:q} --out-dir {params.out_dir:q}"
        f"{LABEL_TABLE_FLAG} > {{log:q}} 2>&1"


rule qc_panel:
    input:
        fixed=preproc("{fixed}"),
        moving=preproc("{moving}"),
        warped=registered("warped"),
        jacobian=registered("jacobian"),
        warp=registered("warp"),
    output:
        report(
            f"{R}/figures/qc/{{method}}/{PAIR}.png",
            category="QC panels",
            subcategory="{method}",
            labels={"method": "{method}", "pair": PAIR},
            caption="../report/qc_panel.rst",
        ),
    log:
        f"{R}/logs/qc_panel/{{method}}/{PAIR}.log",
    shell:
        "nir figures --qc {input.fixed:q} {input.moving:q} {input.warped:q} {input.jacobian:q}"
        " {input.warp:q} {output:q} > {log:q} 2>&1"


# The versions of Python, nir-cohort and every package it requires, read where the jobs run.
rule software_versions:
    output:
        tsv=SOFTWARE_VERSIONS["tsv"],
        html=report(
            SOFTWARE_VERSIONS["html"],
            category="About",
            caption="../report/software_versions.rst",
        ),
    log:
        f"{R}/logs/software_versions/software_versions.log",
    script:
        "../scripts/versions.py"
