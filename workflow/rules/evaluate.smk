# One job per method and pair: long-format metrics CSV (Dice/HD95 before and after, regularity).
# Only when evaluation.in_register_job is false; otherwise the register job writes the CSV.

EVALUATE_SHELL = f"{evaluate_shell('input')} > {{log:q}} 2>&1"


rule evaluate:
    input:
        fixed_labels=preproc_labels("{fixed}"),
        moving_labels=preproc_labels("{moving}"),
        warped_labels=registered("warped_labels"),
        jacobian=registered("jacobian"),
        summary=registered("summary"),
        **LABEL_TABLE_INPUT,
    output:
        metrics=METRICS_CSV,
    params:
        labels_set=LABELS.labels_set,
    log:
        f"{R}/logs/evaluate/{{method}}/{PAIR}.log",
    shell:
        EVALUATE_SHELL
