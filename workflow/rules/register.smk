# One job per method and pair: {moving} is registered onto {fixed} (pair ID {moving}_to_{fixed}).


rule method_params:
    output:
        f"{R}/register/{{method}}/params.yaml",
    params:
        text=lambda wc: params_yaml(wc.method),
    log:
        f"{R}/logs/method_params/{{method}}.log",
    shell:
        "printf '%s' {params.text:q} > {output} 2> {log}"


rule register:
    input:
        fixed=preproc("{fixed}"),
        moving=preproc("{moving}"),
        moving_labels=preproc_labels("{moving}"),
        params=f"{R}/register/{{method}}/params.yaml",
    output:
        warped=registered("warped"),
        warped_labels=registered("warped_labels"),
        warp=registered("warp"),
        jacobian=registered("jacobian"),
        summary=registered("summary"),
    params:
        prefix=f"{R}/register/{{method}}/{PAIR}/{PAIR}",
        seed=config["seed"],
        device=config["device"],
    log:
        f"{R}/logs/register/{{method}}/{PAIR}.log",
    benchmark:
        f"{R}/benchmarks/register/{{method}}/{PAIR}.tsv"
    threads: config["resources"]["threads"]
    resources:
        mem_mb=lambda wc, attempt: config["resources"]["mem_mb"] * attempt,
        runtime=config["resources"]["runtime"],
        gpu=config["resources"]["gpu"],
    shell:
        "nir register --fixed {input.fixed} --moving {input.moving}"
        " --moving-labels {input.moving_labels} --out {params.prefix}"
        " --config {input.params} --seed {params.seed} --device {params.device}"
        " --threads {threads} --quiet > {log} 2>&1"
