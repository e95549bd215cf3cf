# One job per subject: results/preprocess/{subject}/{subject}_preproc.nii.gz and _labels.nii.gz.
# A subject's brain mask (sheet column brainmask, bids.brainmask) replaces brain extraction.
if config["preprocessed"]:

    rule copy_preprocessed:
        input:
            t1w=lambda wc: SUBJECTS[wc.subject].t1w,
            labels=lambda wc: SUBJECTS[wc.subject].labels,
        output:
            image=preproc("{subject}"),
            labels=preproc_labels("{subject}"),
        log:
            f"{R}/logs/copy_preprocessed/{{subject}}.log",
        shell:
            "(cp {input.t1w:q} {output.image:q} && cp {input.labels:q} {output.labels:q}) > {log:q} 2>&1"

else:

    rule preprocess:
        input:
            t1w=lambda wc: SUBJECTS[wc.subject].t1w,
            labels=lambda wc: SUBJECTS[wc.subject].labels,
            brainmask=lambda wc: SUBJECTS[wc.subject].brainmask or [],
        output:
            image=preproc("{subject}"),
            labels=preproc_labels("{subject}"),
            brainmask=f"{R}/preprocess/{{subject}}/{{subject}}_brainmask.nii.gz",
            affine=f"{R}/preprocess/{{subject}}/{{subject}}_affine.txt",
            summary=f"{R}/preprocess/{{subject}}/{{subject}}_summary.json",
            qc=report(
                f"{R}/preprocess/{{subject}}/{{subject}}_qc.png",
                category="Preprocessing",
                labels={"subject": "{subject}"},
                caption="../report/preprocess_qc.rst",
            ),
        params:
            prefix=f"{R}/preprocess/{{subject}}/{{subject}}",
            brainmask=brainmask_flag,
            options=preprocess_options(),
        log:
            f"{R}/logs/preprocess/{{subject}}.log",
        benchmark:
            f"{R}/benchmarks/preprocess/{{subject}}.tsv"
        # On the CPU (preprocess_options passes --device cpu), so it reserves no GPU: once per
        # subject, about one registration's time, and mostly numpy/scipy (bias field,
        # resampling); a GPU held for it would idle, and the CPU gives the same preprocessed
        # images on every node. Torch and BLAS use `threads` (Snakemake sets OMP_NUM_THREADS).
        threads: config["preprocess"]["resources"]["threads"]
        resources:
            mem_mb=job_resource(config["preprocess"]["resources"], "mem_mb"),
            runtime=job_resource(config["preprocess"]["resources"], "runtime"),
        shell:
            "nir preprocess --t1w {input.t1w:q} --labels {input.labels:q} --out {params.prefix:q}"
            " {params.brainmask} {params.options} > {log:q} 2>&1"
