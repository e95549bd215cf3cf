# Study-template construction (template.build), round by round as nir.study.template_plan lays
# out (nir template runs the same plan in one process): round k registers every subject onto
# the template T_k, one job per subject (template_register; template_register_final for the
# last round, which also writes inverse warps in velocity mode); template_update averages the
# subjects through the inverse of their mean displacement into T_{k+1}. The loop is the DAG:
# a resumed run redoes only what is missing. Round K (the last) gives the template-space
# outputs, and template_qc measures and draws each subject's registration onto the final
# template. Registration outputs that are not kept (TemplatePlan.kept: `outputs`,
# template.keep_rounds) are temp(): deleted once the steps that read them are done.
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


# Resources as the template method's register jobs (its `resources`, else the config's), and
# its GPUs reserved the same way, since `nir register --device auto` takes a visible GPU.
rule template_register:
    wildcard_constraints:
        iteration=TEMPLATE.rounds(final=False),
    input:
        fixed=TEMPLATE.image("{iteration}"),
        moving=preproc("{subject}"),
        moving_labels=preproc_labels("{subject}"),
        params=f"{R}/register/{TEMPLATE.method}/params.yaml",
    output:
        **template_outputs(final=False),
    params:
        prefix=TEMPLATE.prefix(),
        seed=config["seed"],
        device=config["device"],
        options=TEMPLATE.register_flags(final=False),
    log:
        f"{R}/logs/template/register/iter-{{iteration}}/{{subject}}.log",
    benchmark:
        f"{R}/benchmarks/template/iter-{{iteration}}/{{subject}}.tsv"
    threads: method_resource("threads", TEMPLATE.method)
    resources:
        mem_mb=method_resource("mem_mb", TEMPLATE.method),
        runtime=method_resource("runtime", TEMPLATE.method),
        gpu=method_resource("gpu", TEMPLATE.method),
    shell:
        "nir register --fixed {input.fixed:q} --moving {input.moving:q}"
        " --moving-labels {input.moving_labels:q} --out {params.prefix:q}"
        " --config {input.params:q} --seed {params.seed} --device {params.device}"
        " --threads {threads} --quiet {params.options} > {log:q} 2>&1"


use rule template_register as template_register_final with:
    wildcard_constraints:
        iteration=TEMPLATE.rounds(final=True),
    output:
        **template_outputs(final=True),
    params:
        prefix=TEMPLATE.prefix(),
        seed=config["seed"],
        device=config["device"],
        options=TEMPLATE.register_flags(final=True),


rule template_update:
    wildcard_constraints:
        iteration=r"(?!00)\d\d",  # iter-00 is template_init's
    input:
        images=[preproc(s) for s in SUBJECTS],
        warps=lambda wc: round_outputs("warp", TEMPLATE.previous(wc.iteration)),
        template=lambda wc: TEMPLATE.image(TEMPLATE.previous(wc.iteration)),
    output:
        template=TEMPLATE.image("{iteration}"),
        summary=TEMPLATE.update_record("{iteration}"),
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
        TEMPLATE.round_record("{iteration}"),
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


# QC of the last round: Dice of each subject's warped labels to the template labels and NCC of
# its warped image to the template, outliers flagged (nir.study.template_qc), one panel each
rule template_qc:
    input:
        template=f"{TEMPLATE.root}/template.nii.gz",
        labels=f"{TEMPLATE.root}/template_labels.nii.gz",
        warped=round_outputs("warped", TEMPLATE.iterations),
        warped_labels=round_outputs("warped_labels", TEMPLATE.iterations),
    output:
        table=report(TEMPLATE.qc("template_qc.csv"), category="Template",
                     subcategory="QC", caption="../report/template_qc_table.rst"),
        markdown=TEMPLATE.qc("template_qc.md"),
        panels=[report(TEMPLATE.qc(f"{s}.png"), category="Template", subcategory="QC",
                       labels={"subject": s}, caption="../report/template_qc_panel.rst")
                for s in SUBJECTS],
    params:
        subjects=list(SUBJECTS),
        excluded=EXCLUDED,
    log:
        f"{R}/logs/template/qc.log",
    script:
        "../scripts/template_qc.py"


rule template_progress:
    input:
        rounds=[TEMPLATE.round_record(k) for k in range(TEMPLATE.iterations + 1)],
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
    *rules.template_qc.output,
    *[round_outputs(kind, TEMPLATE.iterations) for kind in TEMPLATE.kinds(final=True)
      if TEMPLATE.kept(kind, final=True)],
]
