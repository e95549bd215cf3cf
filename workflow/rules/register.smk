# One job per method and pair: {moving} is registered onto {fixed} (pair ID {moving}_to_{fixed}),
# by NIR or by the ANTs baseline; with evaluation.in_register_job the same job also evaluates.

localrules:
    ants_env,


rule method_params:
    output:
        f"{R}/register/{{method}}/params.yaml",
    params:
        text=lambda wc: params_yaml(wc.method),
    log:
        f"{R}/logs/method_params/{{method}}.log",
    shell:
        "printf '%s' {params.text:q} > {output:q} 2> {log:q}"


NIR_IO = registration_io("nir")
ANTS_IO = registration_io("ants")
EVALUATE_AFTER = f" && {evaluate_shell('output')} >> {{log:q}} 2>&1" if EVALUATE_IN_REGISTER else ""
PAIR_ARGS = (  # options shared by both verbs; folding % is counted where fixed labels > 0
    "--fixed {input.fixed:q} --moving {input.moving:q}"
    " --moving-labels {input.moving_labels:q} --out {params.prefix:q}"
    " --fixed-labels {input.fixed_labels:q} --warp-dtype {params.warp_dtype}"
)
NIR_SHELL = (
    f"nir register {PAIR_ARGS}"
    " --config {input.params:q} --labels-set {params.labels_set:q}"  # as in convergence records
    " --seed {params.seed} --device {params.device}"
    f" --threads {{threads}} --quiet > {{log:q}} 2>&1{EVALUATE_AFTER}"
)
ANTS_SHELL = (
    f"nir ants-syn {PAIR_ARGS}"
    " --ants-python {params.python:q} --transform {params.transform:q}"
    f" --seed {{params.seed}} --threads {{threads}} > {{log:q}} 2>&1{EVALUATE_AFTER}"
)


rule register:
    wildcard_constraints:
        method=methods_regex("nir", tracked=False),
    input:
        **NIR_IO[0],
    output:
        **kept(NIR_IO[1]),
    params:
        prefix=f"{R}/register/{{method}}/{PAIR}/{PAIR}",
        warp_dtype=config["outputs"]["warp_dtype"],
        seed=config["seed"],
        device=config["device"],
        labels_set=LABELS.labels_set,
    log:
        f"{R}/logs/register/{{method}}/{PAIR}.log",
    benchmark:
        f"{R}/benchmarks/register/{{method}}/{PAIR}.tsv"
    threads: method_resource("threads")
    resources:
        mem_mb=method_resource("mem_mb"),
        runtime=method_resource("runtime"),
        gpu=method_resource("gpu"),
    shell:
        NIR_SHELL


# A method with track_every > 0 also writes its convergence records' slices (paper panels).
use rule register as register_tracked with:
    wildcard_constraints:
        method=methods_regex("nir", tracked=True),
    input:
        **registration_io("nir", tracked=True)[0],
    output:
        **kept(registration_io("nir", tracked=True)[1]),


# The antspyx environment is built once, on the submitting host (it needs the registry).
rule ants_env:
    output:
        f"{ANTS_VENV}/nir-ants-env.json",
    params:
        venv=folder_of("output"),
    log:
        f"{R}/logs/ants_env.log",
    shell:
        "nir ants-env --venv {params.venv:q} > {log:q} 2>&1"


rule register_ants:
    wildcard_constraints:
        method=methods_regex("ants"),
    input:
        **ANTS_IO[0],
    output:
        **kept(ANTS_IO[1]),
    params:
        prefix=f"{R}/register/{{method}}/{PAIR}/{PAIR}",
        warp_dtype=config["outputs"]["warp_dtype"],
        python=f"{ANTS_VENV}/bin/python",
        transform=lambda wc: METHODS[wc.method].options["transform"],
        seed=config["seed"],
        labels_set=LABELS.labels_set,
    log:
        f"{R}/logs/register/{{method}}/{PAIR}.log",
    benchmark:
        f"{R}/benchmarks/register/{{method}}/{PAIR}.tsv"
    threads: method_resource("threads")
    resources:
        mem_mb=method_resource("mem_mb"),
        runtime=method_resource("runtime"),
        gpu=0,
    shell:
        ANTS_SHELL
