# Study-template construction (template.build): iteration k registers every subject onto the
# template T_k, one job per subject (template_register); template_update averages the subjects
# through the inverse of their mean displacement into T_{k+1}. The loop is the DAG: a resumed
# run redoes only what is missing. Round K (the last) gives the template-space outputs.
from nir.study.template_plan import TemplatePlan

TEMPLATE = TemplatePlan.from_config(config, METHODS, list(SUBJECTS), R)


wildcard_constraints:
    iteration=r"\d\d",


rule template_init:
    input:
        images=[preproc(s) for s in SUBJECTS],
    output:
        TEMPLATE.image(0),
    params:
        initial=config["template"]["initial"],
        ids=list(SUBJECTS),
    log:
        f"{R}/logs/template/init.log",
    script:
        "../scripts/template_init.py"


rule template_register:
    input:
        fixed=TEMPLATE.image("{iteration}"),
        moving=preproc("{subject}"),
        moving_labels=preproc_labels("{subject}"),
        params=f"{R}/register/{TEMPLATE.method}/params.yaml",
    output:
        **{kind: TEMPLATE.registered(kind) for kind in TEMPLATE.kinds},
    params:
        prefix=TEMPLATE.prefix(),
        seed=config["seed"],
        device=config["device"],
        inverse="--inverse" if TEMPLATE.inverse else "",
    log:
        f"{R}/logs/template/register/iter-{{iteration}}/{{subject}}.log",
    benchmark:
        f"{R}/benchmarks/template/iter-{{iteration}}/{{subject}}.tsv"
    threads: config["resources"]["threads"]
    resources:
        mem_mb=lambda wc, attempt: config["resources"]["mem_mb"] * attempt,
        runtime=config["resources"]["runtime"],
        gpu=config["resources"]["gpu"],
    shell:
        "nir register --fixed {input.fixed:q} --moving {input.moving:q}"
        " --moving-labels {input.moving_labels:q} --out {params.prefix:q}"
        " --config {input.params:q} --seed {params.seed} --device {params.device}"
        " --threads {threads} --quiet {params.inverse} > {log:q} 2>&1"


rule template_update:
    wildcard_constraints:
        iteration=r"(?!00)\d\d",  # iter-00 is template_init's
    input:
        images=[preproc(s) for s in SUBJECTS],
        warps=lambda wc: round_outputs("warp", TEMPLATE.previous(wc.iteration)),
        template=lambda wc: TEMPLATE.image(TEMPLATE.previous(wc.iteration)),
    output:
        template=TEMPLATE.image("{iteration}"),
        summary=f"{TEMPLATE.root}/iter-{{iteration}}/update.json",
    log:
        f"{R}/logs/template/update/iter-{{iteration}}.log",
    script:
        "../scripts/template_update.py"


rule template_round:
    input:
        template=TEMPLATE.image("{iteration}"),
        warps=round_outputs("warp"),
        warped_labels=round_outputs("warped_labels"),
    output:
        f"{TEMPLATE.root}/iter-{{iteration}}/round.json",
    params:
        iteration=lambda wc: int(wc.iteration),
    log:
        f"{R}/logs/template/round/iter-{{iteration}}.log",
    script:
        "../scripts/template_round.py"


rule template_final:
    input:
        template=TEMPLATE.image(TEMPLATE.iterations),
        warped_labels=round_outputs("warped_labels", TEMPLATE.iterations),
    output:
        template=f"{TEMPLATE.root}/template.nii.gz",
        labels=f"{TEMPLATE.root}/template_labels.nii.gz",
        mask=f"{TEMPLATE.root}/template_brainmask.nii.gz",
    log:
        f"{R}/logs/template/final.log",
    script:
        "../scripts/template_final.py"


rule template_progress:
    input:
        rounds=[f"{TEMPLATE.root}/iter-{k:02d}/round.json"
                for k in range(TEMPLATE.iterations + 1)],
        labels=[preproc_labels(s) for s in SUBJECTS],
    output:
        table=report(f"{TEMPLATE.root}/progress.tsv", category="Template",
                     caption="../report/template_progress_table.rst"),
        figures=[report(f"{R}/figures/template_progress.{ext}", category="Template",
                        subcategory=ext.upper(), caption="../report/template_progress.rst")
                 for ext in FIGURE_FORMATS],
    log:
        f"{R}/logs/template/progress.log",
    script:
        "../scripts/template_progress.py"


TEMPLATE_TARGETS = [
    *rules.template_final.output,
    *rules.template_progress.output,
    *[round_outputs(kind, TEMPLATE.iterations) for kind in TEMPLATE.kinds],
]
