# One job per method and pair: long-format metrics CSV (Dice/HD95 before and after, regularity).


rule evaluate:
    input:
        fixed_labels=preproc_labels("{fixed}"),
        moving_labels=preproc_labels("{moving}"),
        warped_labels=registered("warped_labels"),
        jacobian=registered("jacobian"),
        summary=registered("summary"),
    output:
        f"{R}/metrics/{{method}}/{PAIR}.csv",
    params:
        labels_set=config["evaluation"]["labels_set"],
    log:
        f"{R}/logs/evaluate/{{method}}/{PAIR}.log",
    shell:
        "nir evaluate --fixed-labels {input.fixed_labels} --moving-labels {input.moving_labels}"
        " --warped-labels {input.warped_labels} --jacobian {input.jacobian}"
        " --summary {input.summary} --pair {wildcards.moving}_to_{wildcards.fixed}"
        " --fixed {wildcards.fixed} --moving {wildcards.moving} --method {wildcards.method}"
        " --labels-set {params.labels_set} --out {output} > {log} 2>&1"
