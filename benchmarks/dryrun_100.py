"""Time `snakemake -n` on a 100-subject cohort with every ordered pair (9,900 pairs).

Dummy (empty) input files are enough: with ``preprocessed: true`` the workflow only checks that
they exist.  Prints the wall and CPU time of the dry run (target: under 60 s on 2 cores), the
job count, and with --profile a cProfile breakdown of where the time goes.

Usage: python benchmarks/dryrun_100.py [--subjects 100] [--out benchmarks/out/dryrun_100]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import pstats
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"


def make_cohort(folder: Path, n_subjects: int) -> Path:
    """Empty stand-in images and labels plus a sheet and a config using every ordered pair."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    rows = ["subject\tt1w\tlabels"]
    for i in range(1, n_subjects + 1):
        sid = f"s{i:03d}"
        for kind in ("T1w", "dseg"):
            (data / f"{sid}_{kind}.nii.gz").touch()
        rows.append(f"{sid}\tdata/{sid}_T1w.nii.gz\tdata/{sid}_dseg.nii.gz")
    (folder / "cohort.tsv").write_text("\n".join(rows) + "\n")
    config = folder / "config.yaml"
    config.write_text("cohort: cohort.tsv\npreprocessed: true\npairs: {mode: all}\n"
                      "methods: {nir: {mode: velocity}}\nevaluation: {qc_pairs: 3}\n")
    return config


def dry_run_command(folder: Path, config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(folder),
            "--configfile", str(config), "--cores", "2", "-n", "--quiet", "rules", *extra]


def timed_dry_run(folder: Path, config: Path, *extra: str) -> tuple[float, float, str]:
    """(wall s, CPU s, output) of one dry run in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(dry_run_command(folder, config, *extra), capture_output=True,
                          text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-3000:] + done.stderr[-3000:])
    return seconds, cpu, done.stdout + done.stderr


def report(label: str, seconds: float, cpu: float, output: str) -> None:
    total = re.search(r"^total\s+(\d+)", output, re.MULTILINE)
    print(f"{label}: {total.group(1) if total else '?'} jobs planned in {seconds:.1f} s wall, "
          f"{cpu:.1f} s CPU")


def profile_in_process(folder: Path, config: Path, top: int) -> str:
    """cProfile of the same dry run inside this interpreter, sorted by cumulative time."""
    from snakemake.cli import main as snakemake_main

    profiler = cProfile.Profile()
    profiler.enable()
    with contextlib.suppress(SystemExit):
        snakemake_main(dry_run_command(folder, config)[3:])
    profiler.disable()
    buffer = io.StringIO()
    pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(top)
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "dryrun_100")
    parser.add_argument("--batches", type=int, default=4,
                        help="also time the first of N batches (snakemake --batch tables=1/N)")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile breakdown")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    config = make_cohort(args.out, args.subjects)
    pairs = args.subjects * (args.subjects - 1)
    print(f"{args.subjects} subjects, {pairs} pairs (wall exceeds CPU when other processes "
          "share the cores)")
    report("snakemake -n", *timed_dry_run(args.out, config))
    if args.batches > 1:
        report(f"snakemake -n --batch tables=1/{args.batches}",
               *timed_dry_run(args.out, config, "--batch", f"tables=1/{args.batches}"))
    if args.profile:
        print(profile_in_process(args.out, config, top=25))
    return 0


if __name__ == "__main__":
    sys.exit(main())
