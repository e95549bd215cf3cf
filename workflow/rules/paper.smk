# The paper outputs (config/paper.yaml): the methods with `track_every` > 0 record mean Dice and
# % det J <= 0 during the fit (nir register --fixed-labels ... --labels-set, register.smk) and
# keep slices of the warped moving image and det J at each record; the `paper` job then draws
# their convergence and the panels of one pair (the paper's Fig 5) and ranks every method on
# accuracy, regularity, time and memory (nir paper).

if PAPER_OUTPUTS:

    rule paper:
        input:
            pairs=f"{R}/tables/pairs.csv",
            summaries=[registered("summary", m, p.id) for m in TRACKED for p in PAIRS],
            panels=[registered("convergence", m, PANEL_PAIR) for m in PANEL_METHODS],
        output:
            [paper_output(os.path.basename(path)) for path in PAPER_OUTPUTS],
        params:
            tables=folder_of("input"),
            out_dir=folder_of("output"),
            panel_pair=PANEL_PAIR,
        log:
            f"{R}/logs/paper/paper.log",
        script:
            "../scripts/paper.py"
