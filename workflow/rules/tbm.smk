# Group statistics on the template (tbm.enabled): voxelwise GLM on the smoothed log-Jacobians
# (FWE by Freedman-Lane max-T permutation of a variance-smoothed pseudo-t, or BH-FDR with
# tbm.correction: fdr), per-structure volumes with the group test (BH-FDR), and their figures.
# The design is read and checked here, at config time (nir.study.design): a bad group or
# covariate stops the run before any job.
from nir.errors import NirInputError
from nir.study.design import read_design

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
if not (DEMO and not TBM["participants"]):  # the demo's table is made by the demo job
    read_design(TBM_TABLE, list(SUBJECTS), TBM["group_column"], TBM["covariates"],
                TBM["groups"])
TBM_DESIGN = dict(group_column=TBM["group_column"], covariates=TBM["covariates"],
                  groups=TBM["groups"])
TBM_MAPS = ("t", "p", "q", "significant", "effect")
FINAL_ROUND = TEMPLATE.iterations


rule tbm_glm:
    input:
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


rule tbm_figures:
    input:
        tmap=f"{R}/tbm/tbm_t.nii.gz",
        summary=f"{R}/tbm/tbm_summary.json",
        template=f"{TEMPLATE.root}/template.nii.gz",
        tests=f"{R}/tables/tbm_structures.csv",
    output:
        [report(f"{R}/figures/{name}.{ext}", category="Group statistics",
                subcategory=ext.upper(), caption=f"../report/{name}.rst")
         for name in ("tbm_tmap", "tbm_effect_sizes") for ext in FIGURE_FORMATS],
    log:
        f"{R}/logs/tbm/figures.log",
    script:
        "../scripts/tbm_figures.py"


TBM_TARGETS = [*rules.tbm_glm.output, *rules.tbm_volumes.output, *rules.tbm_figures.output]
