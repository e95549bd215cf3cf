# Group statistics on the template (tbm.enabled): voxelwise GLM on the smoothed log-Jacobians
# (FWE by Freedman-Lane permutation of the TFCE of a variance-smoothed pseudo-t; max-T of the
# pseudo-t with tbm.correction: fwe; BH-FDR with fdr), the table of significant clusters, the
# per-structure volumes with the group test (BH-FDR), and their figures. The covariate `tiv`
# is computed from the native brain masks unless the table has such a column. The design is
# read and checked here, at config time (nir.study.design): a bad group or covariate, or a
# group that the config's `exclude` leaves with fewer than 2 subjects, stops the run before any
# job (the excluded subjects are not in SUBJECTS: no job below reads them).
from nir.errors import NirInputError
from nir.study.demo import demo_groups
from nir.study.design import computed_covariates, group_levels, read_design

TBM = config["tbm"]
TBM_TABLE = TBM["participants"] or (
    config["cohort"] if "cohort" in config
    else f"{config['bids']['root']}/participants.tsv" if "bids" in config
    else f"{R}/demo/participants.tsv"
)
if not config["template"]["build"]:
    raise NirInputError("config: tbm.enabled", "group statistics need the template: set "
                                               "template.build: true")
if DEMO and config["demo"]["groups"] != 2 and not TBM["participants"]:
    raise NirInputError("config: tbm", "the demo cohort has groups only with demo.groups: 2 "
                                       "(or name a participants table in tbm.participants)")
TBM_COMPUTABLE = () if config["preprocessed"] else ("tiv",)  # needs the native brain masks
if DEMO and not TBM["participants"]:  # the demo's table is made by the demo job
    DEMO_GROUPS = demo_groups(config["demo"]["n_subjects"])
    group_levels(TBM_TABLE, TBM["group_column"], {s: DEMO_GROUPS[s] for s in SUBJECTS},
                 TBM["groups"], {s: DEMO_GROUPS[s] for s in EXCLUDED})
else:
    read_design(TBM_TABLE, list(SUBJECTS), TBM["group_column"], TBM["covariates"],
                TBM["groups"], computable=TBM_COMPUTABLE, excluded=list(EXCLUDED))
TBM_DESIGN = dict(group_column=TBM["group_column"], covariates=TBM["covariates"],
                  groups=TBM["groups"], computable=TBM_COMPUTABLE)
TBM_TIV = "tiv" in computed_covariates(TBM_TABLE, TBM["covariates"], TBM_COMPUTABLE)
TBM_COVARIATE_INPUTS = {"tiv": f"{R}/tables/tbm_tiv.csv"} if TBM_TIV else {}
TBM_MAPS = ("t", "p", "q", "significant", "effect", *(
    ("tfce",) if TBM["correction"] == "tfce" else ()))
FINAL_ROUND = TEMPLATE.iterations
TBM_FIGURES = ("tbm_tmap", "tbm_glass", "tbm_effect_sizes")


if TBM_TIV:

    rule tbm_tiv:
        input:
            masks=[f"{R}/preprocess/{s}/{s}_brainmask.nii.gz" for s in SUBJECTS],
        output:
            report(TBM_COVARIATE_INPUTS["tiv"], category="Group statistics",
                   caption="../report/tbm_tiv.rst"),
        params:
            subjects=list(SUBJECTS),
        log:
            f"{R}/logs/tbm/tiv.log",
        script:
            "../scripts/tbm_tiv.py"


rule tbm_glm:
    input:
        **TBM_COVARIATE_INPUTS,
        jacobians=round_outputs("jacobian", FINAL_ROUND),
        mask=f"{TEMPLATE.root}/template_brainmask.nii.gz",
        template=f"{TEMPLATE.root}/template.nii.gz",
        table=TBM_TABLE,
    output:
        maps=[f"{R}/tbm/tbm_{name}.nii.gz" for name in TBM_MAPS],
        summary=f"{R}/tbm/tbm_summary.json",
        logjac=[f"{R}/tbm/logjac/{s}_logjac.nii.gz" for s in SUBJECTS],
    params:
        design=TBM_DESIGN,
        subjects=list(SUBJECTS),
        fwhm_mm=TBM["fwhm_mm"],
        q=TBM["q"],
        correction=TBM["correction"],
        permutations=TBM["permutations"],
        variance_fwhm_mm=TBM["variance_fwhm_mm"],
        seed=config["seed"],
    log:
        f"{R}/logs/tbm/glm.log",
    # numpy and scipy only (BLAS threads: Snakemake sets OMP_NUM_THREADS), so no GPU
    threads: TBM["resources"]["threads"]
    resources:
        mem_mb=job_resource(TBM["resources"], "mem_mb"),
        runtime=job_resource(TBM["resources"], "runtime"),
    script:
        "../scripts/tbm_glm.py"


rule tbm_volumes:
    input:
        **TBM_COVARIATE_INPUTS,
        template_labels=f"{TEMPLATE.root}/template_labels.nii.gz",
        jacobians=round_outputs("jacobian", FINAL_ROUND),
        native=[SUBJECTS[s].labels for s in SUBJECTS],
        table=TBM_TABLE,
    output:
        volumes=f"{R}/tables/tbm_volumes.csv",
        tests=report(f"{R}/tables/tbm_structures.csv", category="Group statistics",
                     caption="../report/tbm_structures.rst"),
    params:
        design=TBM_DESIGN,
        subjects=list(SUBJECTS),
        q=TBM["q"],
    log:
        f"{R}/logs/tbm/volumes.log",
    script:
        "../scripts/tbm_volumes.py"


# the template's position in MNI152 space (an affine registration), for the cluster table
rule tbm_mni:
    input:
        template=f"{TEMPLATE.root}/template.nii.gz",
    output:
        f"{R}/tbm/template_to_mni.json",
    params:
        seed=config["seed"],
    log:
        f"{R}/logs/tbm/mni.log",
    script:
        "../scripts/tbm_mni.py"


rule tbm_clusters:
    input:
        maps=[f"{R}/tbm/tbm_{name}.nii.gz" for name in TBM_MAPS],
        summary=f"{R}/tbm/tbm_summary.json",
        labels=f"{TEMPLATE.root}/template_labels.nii.gz",
        mni=f"{R}/tbm/template_to_mni.json",
    output:
        table=report(f"{R}/tbm/clusters.csv", category="Group statistics",
                     caption="../report/tbm_clusters_table.rst"),
        markdown=f"{R}/tbm/clusters.md",
    log:
        f"{R}/logs/tbm/clusters.log",
    script:
        "../scripts/tbm_clusters.py"


rule tbm_figures:
    input:
        maps=[f"{R}/tbm/tbm_{name}.nii.gz" for name in TBM_MAPS],
        summary=f"{R}/tbm/tbm_summary.json",
        template=f"{TEMPLATE.root}/template.nii.gz",
        tests=f"{R}/tables/tbm_structures.csv",
        clusters=f"{R}/tbm/clusters.csv",
    output:
        [report(f"{R}/figures/{name}.{ext}", category="Group statistics",
                subcategory=ext.upper(), caption=f"../report/{name}.rst")
         for name in TBM_FIGURES for ext in FIGURE_FORMATS],
    log:
        f"{R}/logs/tbm/figures.log",
    script:
        "../scripts/tbm_figures.py"


TBM_TARGETS = [*rules.tbm_glm.output, *rules.tbm_volumes.output, *rules.tbm_clusters.output,
               *rules.tbm_figures.output]
