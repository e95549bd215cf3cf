# The paper outputs (config/paper.yaml): the methods with `track_every` > 0 record mean Dice and
# % det J <= 0 during the fit (nir register --fixed-labels ... --labels-set, register.smk); the
# `paper` job then draws their convergence and ranks every method on accuracy, regularity, time
# and memory (nir paper).

if PAPER_OUTPUTS:

    rule paper:
        input:
            pairs=f"{R}/tables/pairs.csv",
            summaries=[registered("summary", m, p.id) for m in TRACKED for p in PAIRS],
        output:
            [paper_output(os.path.basename(path)) for path in PAPER_OUTPUTS],
        params:
            tables=folder_of("input"),
            out_dir=folder_of("output"),
        log:
            f"{R}/logs/paper/paper.log",
        script:
            "../scripts/paper.py"
