# The synthetic demo cohort (used when the config names neither `cohort` nor `bids`).
if DEMO:

    rule demo:
        output:
            t1w=[str(s.t1w) for s in SUBJECT_LIST],
            labels=[str(s.labels) for s in SUBJECT_LIST],
            sheet=f"{R}/demo/cohort.tsv",
            participants=[f"{R}/demo/participants.tsv"] if config["demo"]["groups"] == 2 else [],
        params:
            out=lambda wc, output: os.path.dirname(output.sheet),
            n=config["demo"]["n_subjects"],
            seed=config["demo"]["seed"],
            options=flags({k: v for k, v in config["demo"].items()
                           if k not in ("n_subjects", "seed")}),
        log:
            f"{R}/logs/demo/demo.log",
        shell:
            "nir demo --out {params.out:q} --n-subjects {params.n} --seed {params.seed}"
            " {params.options} > {log:q} 2>&1"
