"""Benchmark the NIR presets against ANTs SyN on real aligned160 pairs at the full 1 mm grid.

In one invocation, for every pair, it runs ``nir register --preset P`` for each preset (at each
``--threads`` count, in a fresh process) and ``nir ants-syn``, scores every result the same way
(mean Dice over the main aseg structures before and after, mean HD95, % of brain voxels with
det J <= 0, SDlogJ), and prints one table per method: tuning pairs, held-out pairs and all.

``--more-pairs`` adds every other ordered pair of the cohort (30 in all for its 6 subjects) at
``--more-presets``, so that a change tuned on the two tuning pairs is also measured on the 28
others; ``--reference REV`` runs the default preset of git revision REV (checked out once in a
worktree under ``--out-dir``) on every pair as well, and a paired table compares each method
with it pair by pair.

SyN costs 30-50 min a pair on this CPU, so its scored result is cached under
``--cache-dir``, keyed by the input files' contents, its transform, thread count and the
antspyx/nir versions: it runs once per pair, not once per benchmark run.  A NIR result is
cached too, keyed by the inputs, preset, threads, device, extra arguments, torch version and
the contents of every ``nir`` module that ``nir register`` imports, so any change to the
engine reruns it (``--no-cache`` reruns everything).

    python benchmarks/register_pairs.py                      # 6 pairs, 3 presets, SyN
    python benchmarks/register_pairs.py --presets fast --threads 1 2 --pairs sub-02:sub-01
    python benchmarks/register_pairs.py --device cuda        # time the GPU path, when present
    python benchmarks/register_pairs.py --threads 2 --more-pairs --reference a702dbd

Seconds are wall time of the whole command (load, fit, inference, writing).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from nir.evaluation.labels import DEFAULT_STRUCTURES
from nir.evaluation.metrics import hd95_per_label, sdlogj
from nir.markdown import markdown_table
from nir.spatial.io import load_labels, load_volume
from nir.spatial.overlap import dice_per_label, folding_percent, mean_dice, mean_finite
from nir.summary import versions

ROOT = Path(__file__).resolve().parents[1]
COHORT = ROOT.parent / "shared" / "data" / "fs-cohort" / "derivatives" / "aligned160"
ANTS_PYTHON = ROOT / ".venv-ants" / "bin" / "python"
SYN_TRANSFORM = "antsRegistrationSyN[so]"
# sub-02:sub-01 and sub-04:sub-03 are the pairs defaults were tuned on; the rest are held out.
TUNING_PAIRS = ("sub-02:sub-01", "sub-04:sub-03")
HELD_OUT_PAIRS = ("sub-06:sub-05", "sub-03:sub-02", "sub-05:sub-04", "sub-01:sub-06")


def cohort_pairs() -> list[str]:
    """Every ordered MOVING:FIXED pair of distinct aligned160 subjects."""
    subjects = sorted(p.name for p in COHORT.glob("sub-*") if p.is_dir())
    return [f"{m}:{f}" for m in subjects for f in subjects if m != f]


def cohort_path(subject: str, desc: str) -> Path:
    """An aligned160 file of ``subject`` (desc brain_T1w or aseg_dseg)."""
    return COHORT / subject / "anat" / f"{subject}_space-MNI305_desc-{desc}.nii.gz"


def score(fixed: str, moving: str, prefix: Path) -> dict[str, float]:
    """Dice before/after, HD95 after, folding % and SDlogJ (brain = fixed labels > 0)."""
    fixed_labels = load_labels(cohort_path(fixed, "aseg_dseg"))
    moving_labels = load_labels(cohort_path(moving, "aseg_dseg")).data.numpy()
    warped = load_labels(f"{prefix}_warped_labels.nii.gz").data.numpy()
    detj = load_volume(f"{prefix}_jacobian.nii.gz").data.numpy()
    labels = fixed_labels.data.numpy()
    brain = labels > 0
    return {
        "dice_before": mean_dice(dice_per_label(moving_labels, labels, DEFAULT_STRUCTURES)),
        "dice_after": mean_dice(dice_per_label(warped, labels, DEFAULT_STRUCTURES)),
        "hd95_after": mean_finite(hd95_per_label(warped, labels, DEFAULT_STRUCTURES,
                                                 fixed_labels.spacing).values()),
        "folded_pct": folding_percent(detj, brain),
        "sdlogj": sdlogj(detj, brain),
    }


def _timed(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
           ) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=cwd, env=env)
    return time.perf_counter() - start


def _pair_args(fixed: str, moving: str, prefix: Path) -> list[str]:
    return ["--fixed", str(cohort_path(fixed, "brain_T1w")),
            "--moving", str(cohort_path(moving, "brain_T1w")),
            "--moving-labels", str(cohort_path(moving, "aseg_dseg")), "--out", str(prefix)]


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _inputs_digest(fixed: str, moving: str) -> dict[str, str]:
    return {"fixed": _file_digest(cohort_path(fixed, "brain_T1w")),
            "moving": _file_digest(cohort_path(moving, "brain_T1w")),
            "labels": _file_digest(cohort_path(moving, "aseg_dseg"))}


def _key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


# the nir modules ``nir register`` imports, listed by a fresh interpreter
REGISTER_IMPORTS = ("import sys, nir.cli, nir.commands.register\n"
                    "for name, module in list(sys.modules.items()):\n"
                    "    if name.split('.')[0] == 'nir' and getattr(module, '__file__', None):\n"
                    "        print(module.__file__)")


@functools.cache
def register_sources() -> list[Path]:
    """The source files of every nir module ``nir register`` imports: a change to one of them
    reruns a cached NIR result; changes elsewhere in the package (study, statistics) do not."""
    listed = subprocess.run([sys.executable, "-c", REGISTER_IMPORTS], capture_output=True,
                            text=True, check=True, cwd=ROOT).stdout
    return sorted(Path(line) for line in listed.splitlines() if line.strip())


def nir_cache_key(fixed: str, moving: str, preset: str, threads: int, device: str,
                  extra: list[str]) -> str:
    """Digest of everything a NIR run depends on, the engine's source code included."""
    import torch

    code = hashlib.sha256(b"".join(p.relative_to(ROOT).as_posix().encode() + p.read_bytes()
                                   for p in register_sources())).hexdigest()
    return _key({**_inputs_digest(fixed, moving), "preset": preset, "threads": threads,
                 "device": device, "extra": extra, "torch": torch.__version__, "code": code})


def reference_checkout(rev: str, out_dir: Path) -> Path:
    """A worktree of git revision ``rev`` under ``out_dir`` (made once), to run its nir."""
    commit = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout.strip()
    tree = out_dir / f"ref-{commit[:12]}"
    if not (tree / "nir").is_dir():
        subprocess.run(["git", "worktree", "add", "--force", "--detach", str(tree), commit],
                       cwd=ROOT, check=True, capture_output=True)
    return tree


def run_nir(fixed: str, moving: str, preset: str, threads: int, args: argparse.Namespace,
            source: Path | None = None) -> dict:
    """``nir register --preset`` in a fresh process, scored; from the cache when unchanged.

    ``source``: a checkout whose ``nir`` runs instead of this one (cached by its path, which
    names its commit)."""
    if source is None:
        key = nir_cache_key(fixed, moving, preset, threads, args.device, args.extra)
        name = f"{preset}_t{threads}"
    else:
        key = _key({**_inputs_digest(fixed, moving), "source": source.name, "preset": preset,
                    "threads": threads, "device": args.device, "extra": args.extra})
        name = f"{preset}@{source.name}_t{threads}"
    cache = args.cache_dir / f"nir_{moving}_to_{fixed}_{name}_{key}.json"
    if args.cache and cache.exists():
        return json.loads(cache.read_text())
    prefix = args.out_dir / f"{moving}_to_{fixed}_{name}_{args.device}"
    cmd = [sys.executable, "-m", "nir", "register", *_pair_args(fixed, moving, prefix),
           "--preset", preset, "--threads", str(threads), "--device", args.device, "--quiet",
           *args.extra]
    env = None if source is None else {**os.environ, "PYTHONPATH": str(source)}
    wall = _timed(cmd, cwd=source or ROOT, env=env)
    summary = json.loads(Path(f"{prefix}_summary.json").read_text())
    row = {"seconds": wall, "peak_mb": summary["peak_rss_mb"],
           **score(fixed, moving, prefix)}
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(row, indent=2) + "\n")
    return row


def syn_cache_key(fixed: str, moving: str, threads: int) -> str:
    """Digest of everything SyN's result depends on: inputs, transform, threads, versions."""
    ants_version = subprocess.run([str(ANTS_PYTHON), "-c", "import importlib.metadata as m;"
                                   "print(m.version('antspyx'))"], check=True,
                                  capture_output=True, text=True).stdout.strip()
    return _key({**_inputs_digest(fixed, moving), "transform": SYN_TRANSFORM,
                 "threads": threads, "antspyx": ants_version, "nir": versions()["nir-cohort"]})


def run_syn(fixed: str, moving: str, threads: int, out_dir: Path, cache_dir: Path) -> dict:
    """SyN's scored result for one pair, from the cache or by running ``nir ants-syn``."""
    cache = cache_dir / f"syn_{moving}_to_{fixed}_{syn_cache_key(fixed, moving, threads)}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    prefix = out_dir / f"{moving}_to_{fixed}_syn_t{threads}"
    cmd = [sys.executable, "-m", "nir", "ants-syn", *_pair_args(fixed, moving, prefix),
           "--ants-python", str(ANTS_PYTHON), "--transform", SYN_TRANSFORM,
           "--threads", str(threads)]
    wall = _timed(cmd)
    summary = json.loads(Path(f"{prefix}_summary.json").read_text())
    row = {"seconds": wall, "peak_mb": summary["peak_rss_mb"], **score(fixed, moving, prefix)}
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(row, indent=2) + "\n")
    return row


def benchmark_pair(pair: str, args: argparse.Namespace, presets: list[str],
                   syn: bool) -> list[dict]:
    """Rows of one pair: SyN (per thread count, if ``syn``), each preset and the reference
    revision's default (per thread count)."""
    moving, fixed = pair.split(":")
    base = {"pair": f"{moving}_to_{fixed}",
            "set": "tuning" if pair in TUNING_PAIRS else "held-out", "syn_pair": syn}
    rows = []
    if syn and args.syn:
        for threads in args.syn_threads:
            row = run_syn(fixed, moving, threads, args.out_dir, args.cache_dir)
            rows.append({**base, "method": "ants-syn", "threads": threads, **row})
            print(json.dumps(rows[-1]), flush=True)
    runs = [(f"nir-{preset}", preset, None) for preset in presets]
    if args.reference:
        runs.append((f"nir-default@{args.reference}", "default", args.reference_tree))
    for method, preset, source in runs:
        for threads in args.threads:
            row = run_nir(fixed, moving, preset, threads, args, source)
            rows.append({**base, "method": method, "threads": threads, **row})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per method and pair set: means, seconds per thread count, ratio to SyN."""
    quality = ["dice_before", "dice_after", "hd95_after", "folded_pct", "sdlogj", "peak_mb"]
    out = []
    main = rows[rows["syn_pair"]]
    subsets = [("all", main), *main.groupby("set")]
    if not rows["syn_pair"].all():  # --more-pairs: every pair not tuned on, for the methods
        #                              run on more pairs than SyN's
        more = rows.loc[~rows["syn_pair"], "method"].unique()
        subsets.append(("held-out, every pair",
                        rows[(rows["set"] == "held-out") & rows["method"].isin(more)]))
    for subset, part in subsets:
        syn = part[part["method"] == "ants-syn"]
        syn_seconds = syn[syn["threads"] == syn["threads"].min()]["seconds"].mean()
        for method, group in part.groupby("method"):
            first = group[group["threads"] == group["threads"].min()]
            entry = {"pairs": subset, "method": method, "n": first["pair"].nunique(),
                     **first[quality].mean().to_dict()}
            for threads, by_threads in group.groupby("threads"):
                entry[f"s_{threads}t"] = by_threads["seconds"].mean()
            # seconds at the fewest threads over SyN's at its fewest (1 unless told)
            entry["syn_time_ratio"] = first["seconds"].mean() / syn_seconds
            out.append(entry)
    return pd.DataFrame(out)


def _markdown_table(head: list[str], rows: list[list[str]]) -> str:
    """A Markdown table of ``head`` over ``rows`` of cells."""
    return "\n".join(markdown_table(head, rows)) + "\n"


def markdown(table: pd.DataFrame) -> str:
    """The summary as a Markdown table (the README's engine table)."""
    threads = sorted(int(c[2:-1]) for c in table.columns if c.startswith("s_"))
    head = ["pairs", "method", "n", "Dice before → after", "HD95 mm", "% det J ≤ 0", "SDlogJ",
            *[f"s, {t} thread{'s' if t > 1 else ''}" for t in threads], "× SyN time",
            "peak MB"]
    rows = []
    for _, row in table.iterrows():
        rows.append([row["pairs"], row["method"], f"{int(row['n'])}",
                     f"{row['dice_before']:.3f} → {row['dice_after']:.3f}",
                     f"{row['hd95_after']:.2f}", f"{row['folded_pct']:.4f}",
                     f"{row['sdlogj']:.3f}",
                     *["–" if pd.isna(row.get(f"s_{t}t")) else f"{row[f's_{t}t']:.0f}"
                       for t in threads],
                     "–" if pd.isna(row["syn_time_ratio"]) else f"{row['syn_time_ratio']:.3f}",
                     f"{row['peak_mb']:.0f}"])
    return _markdown_table(head, rows)


def paired(rows: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Each method against ``reference`` pair by pair, on the held-out pairs they share, at the
    fewest threads: mean and smallest Dice difference, pairs at or above the reference, the
    worst pair's folding and SDlogJ."""
    part = rows[(rows["set"] == "held-out") & (rows["threads"] == rows["threads"].min())]
    dice = part.pivot_table(index="pair", columns="method", values="dice_after")
    out = []
    for method in dice.columns:
        delta = (dice[method] - dice[reference]).dropna()
        mine = part[part["method"] == method]
        out.append({"method": method, "pairs": len(delta), "dice": dice[method].mean(),
                    "delta_mean": delta.mean(), "delta_min": delta.min(),
                    "at_or_above": int((delta >= 0).sum()),
                    "folded_max": mine["folded_pct"].max(), "sdlogj_max": mine["sdlogj"].max(),
                    "seconds": mine["seconds"].mean()})
    return pd.DataFrame(out)


def paired_markdown(table: pd.DataFrame, reference: str) -> str:
    """The paired comparison as a Markdown table."""
    head = ["method", "held-out pairs", "mean Dice", f"Δ vs {reference}, mean",
            "Δ, smallest", "pairs with Δ ≥ 0", "max % det J ≤ 0", "max SDlogJ", "s"]
    return _markdown_table(head, [
        [row["method"], f"{int(row['pairs'])}", f"{row['dice']:.4f}",
         f"{row['delta_mean']:+.4f}", f"{row['delta_min']:+.4f}",
         f"{int(row['at_or_above'])} of {int(row['pairs'])}", f"{row['folded_max']:.4f}",
         f"{row['sdlogj_max']:.3f}", f"{row['seconds']:.1f}"]
        for _, row in table.iterrows()])


def figure(table: pd.DataFrame, path: Path, syn_dice: float | None = None) -> None:
    """Dice against seconds (log scale) for each method over all pairs: filled at the fewest
    threads benchmarked, hollow at the others, joined by a line; ``syn_dice`` (SyN's mean Dice
    on the same pairs from an earlier run, when this one has no SyN) as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    part = table[table["pairs"] == "all"]
    columns = sorted((c for c in part.columns if c.startswith("s_") and c.endswith("t")),
                     key=lambda c: int(c[2:-1]))
    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=150)
    for k, (_, row) in enumerate(part.iterrows()):
        seconds = [(c, row[c]) for c in columns if not pd.isna(row[c])]
        colour = f"C{k}"
        marker = "s" if row["method"] == "ants-syn" else "o"
        ax.plot([v for _, v in seconds], [row["dice_after"]] * len(seconds), color=colour,
                lw=0.8)
        for i, (_, value) in enumerate(seconds):
            ax.scatter(value, row["dice_after"], s=40, marker=marker, color=colour,
                       facecolors=colour if i == 0 else "white", zorder=3)
        label = ", ".join(f"{c[2:-1]} thr {v:.0f} s" for c, v in seconds)
        ax.annotate(f"{row['method']} ({label})", (seconds[0][1], row["dice_after"]),
                    textcoords="offset points", xytext=(-4, 7), fontsize=7, ha="right"
                    if row["method"] == "ants-syn" else "left")
    if syn_dice is not None:
        ax.axhline(syn_dice, color="grey", ls="--", lw=0.8)
        ax.annotate(f"ants-syn, earlier run ({syn_dice:.3f})", (0.98, syn_dice),
                    xycoords=("axes fraction", "data"), textcoords="offset points",
                    xytext=(0, -9), fontsize=7, color="grey", ha="right")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks([t for t in (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
                   if part[columns].min().min() / 2 <= t <= part[columns].max().max() * 2])
    ax.set_xlabel("seconds per pair (whole command), log scale")
    ax.set_ylabel("mean Dice, main aseg structures")
    ax.set_title(f"{int(part['n'].max())} real 1 mm pairs, 2-core CPU; affine only: Dice "
                 f"{part['dice_before'].mean():.3f}", fontsize=9)
    ax.margins(x=0.25, y=0.2)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=[*TUNING_PAIRS, *HELD_OUT_PAIRS],
                        help="MOVING:FIXED subject pairs (default: 2 tuning + 4 held out)")
    parser.add_argument("--presets", nargs="*", default=["fast", "default", "accurate"])
    parser.add_argument("--more-pairs", action="store_true",
                        help="also every other ordered pair of the cohort, at --more-presets")
    parser.add_argument("--more-presets", nargs="*", default=["default"])
    parser.add_argument("--reference", metavar="REV",
                        help="also run the default preset of this git revision on every pair")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2],
                        help="thread counts to time each preset at")
    parser.add_argument("--syn-threads", nargs="+", type=int, default=[1])
    parser.add_argument("--no-syn", dest="syn", action="store_false", help="skip ANTs SyN")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda to time the GPU path")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "benchmarks" / "out" / "cache")
    parser.add_argument("--no-cache", dest="cache", action="store_false",
                        help="rerun NIR even when a cached result matches")
    parser.add_argument("--figure", type=Path, help="write the Dice-seconds figure here")
    parser.add_argument("--syn-dice", type=float, metavar="DICE",
                        help="with --no-syn: SyN's mean Dice on these pairs from an earlier "
                             "run, drawn as a dashed line in the figure")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                        help="further arguments for nir register, e.g. --config p.yaml")
    args = parser.parse_args()
    if args.syn and args.syn_dice is not None:
        parser.error("--syn-dice goes with --no-syn: a run that measures SyN plots SyN's own "
                     "result")
    if not COHORT.exists():
        sys.exit(f"real data absent: {COHORT}")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            sys.exit("--device cuda: torch sees no GPU here")
    if args.syn and not ANTS_PYTHON.exists():
        sys.exit(f"no antspyx environment at {ANTS_PYTHON.parent.parent}: run "
                 "`nir ants-env --venv .venv-ants` or pass --no-syn")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    args.reference_tree = (reference_checkout(args.reference, args.out_dir)
                           if args.reference else None)
    jobs = [(pair, args.presets, True) for pair in args.pairs]
    if args.more_pairs:
        jobs += [(pair, args.more_presets, False) for pair in cohort_pairs()
                 if pair not in args.pairs]
    rows = pd.DataFrame([row for pair, presets, syn in jobs
                         for row in benchmark_pair(pair, args, presets, syn)])
    rows.to_csv(args.out_dir / "register_pairs.csv", index=False)
    table = summarise(rows)
    table.to_csv(args.out_dir / "register_pairs_summary.csv", index=False)
    (args.out_dir / "register_pairs_summary.md").write_text(markdown(table))
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(rows.drop(columns=["set"]).round(4).to_string(index=False))
        print()
        print(table.round(4).to_string(index=False))
    if args.reference:
        reference = f"nir-default@{args.reference}"
        versus = paired(rows, reference)
        versus.to_csv(args.out_dir / "register_pairs_paired.csv", index=False)
        (args.out_dir / "register_pairs_paired.md").write_text(paired_markdown(versus,
                                                                               reference))
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            print()
            print(versus.round(4).to_string(index=False))
    if args.figure:
        figure(table, args.figure, args.syn_dice)


if __name__ == "__main__":
    main()
