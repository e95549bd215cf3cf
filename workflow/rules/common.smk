# Cohort, pairs and output paths, computed once from the validated config by nir.study.cohort.
import os
import shlex
import sys

import pandas as pd
from snakemake.utils import validate

from nir.evaluation.figures import FIGURES, FORMATS as FIGURE_FORMATS
from nir.evaluation.paper import FIGURES as PAPER_FIGURES, TABLES as PAPER_TABLES
from nir.evaluation.tables import TABLES
from nir.study.cohort import (
    ID_REGEX,
    PAIR_MEMBER_REGEX,
    check_no_brainmask,
    check_suffix,
    cohort_from_config,
    make_pairs,
)
from nir.study.exclusions import check_not_named, parse_exclusions
from nir.study.label_config import label_config
from nir.study.methods import parse_methods
from nir.study.paper_panels import check_panel_methods, check_panel_pair

# Shell jobs call `nir`: use the one installed beside this Snakemake (e.g. .venv/bin).
os.environ.update(PATH=os.pathsep.join([os.path.dirname(sys.executable), os.getenv("PATH", "")]))

R = config["results"].rstrip("/")
DEMO = "cohort" not in config and "bids" not in config

# exclude: the subjects left out of the whole run (ID -> reason), before any job is planned
EXCLUDED = parse_exclusions(config["exclude"])
check_not_named(config, EXCLUDED)
SUBJECT_LIST, COHORT_SOURCE = cohort_from_config(config, f"{R}/demo", EXCLUDED)
if "cohort" in config:
    validate(pd.read_csv(config["cohort"], sep="\t", dtype=str, keep_default_na=False),
             workflow.source_path("../schemas/cohort.schema.yaml"))
if config["preprocessed"]:
    check_suffix(SUBJECT_LIST, ".nii.gz", COHORT_SOURCE)
    check_no_brainmask(SUBJECT_LIST, COHORT_SOURCE)
SUBJECTS = {s.id: s for s in SUBJECT_LIST}
PAIRS = make_pairs(list(SUBJECTS), **config["pairs"])
METHODS = parse_methods(config["methods"])
ANTS_VENV = config["baselines"]["ants_venv"].rstrip("/")
# With evaluation.in_register_job, one job per pair and method registers and evaluates.
EVALUATE_IN_REGISTER = config["evaluation"]["in_register_job"]
QC_PAIRS = PAIRS[: config["evaluation"]["qc_pairs"]]
# evaluation.label_table (or None) and the scored labels as every job takes them (table -> ids)
LABELS = label_config(config)
LABEL_TABLE_INPUT = {"label_table": str(LABELS.table)} if LABELS.table else {}
LABEL_TABLE_FLAG = " --label-table {input.label_table:q}" if LABELS.table else ""


# A pair appears in paths as {moving}_to_{fixed}: moving is registered onto fixed.
PAIR = "{moving}_to_{fixed}"


wildcard_constraints:
    subject=ID_REGEX,
    moving=PAIR_MEMBER_REGEX,
    fixed=PAIR_MEMBER_REGEX,
    method=ID_REGEX,


def preproc(sid):
    """Preprocessed T1w of subject ``sid``."""
    return f"{R}/preprocess/{sid}/{sid}_preproc.nii.gz"


def preproc_labels(sid):
    """Preprocessed label map of subject ``sid`` (same grid as its T1w)."""
    return f"{R}/preprocess/{sid}/{sid}_labels.nii.gz"


def registered(kind, method="{method}", pair=PAIR):
    """An output of ``nir register``: warped, warped_labels, warp, jacobian, summary or
    convergence (the convergence records' slices)."""
    suffix = {"summary": "json", "convergence": "npz"}.get(kind, "nii.gz")
    return f"{R}/register/{method}/{pair}/{pair}_{kind}.{suffix}"


def flags(options):
    """Command-line flags from a mapping: ``{"spacing_mm": 2}`` -> ``--spacing-mm 2``."""
    return " ".join(f"--{key.replace('_', '-')} {value}" for key, value in options.items())


def metrics_csvs():
    """Every per-pair evaluation CSV of the run."""
    return [f"{R}/metrics/{m}/{p.id}.csv" for m in METHODS for p in PAIRS]


def qc_panels():
    """QC panels of the first ``evaluation.qc_pairs`` pairs, per method."""
    return [f"{R}/figures/qc/{m}/{p.id}.png" for m in METHODS for p in QC_PAIRS]


def params_yaml(method):
    """The YAML text of ``method``'s registration parameters (``nir register --config``)."""
    import yaml

    return yaml.safe_dump(METHODS[method].options, sort_keys=True)


def methods_regex(engine, tracked=None):
    """Wildcard constraint matching exactly the configured methods of ``engine`` (only those
    with, or without, convergence records when ``tracked`` is True or False)."""
    names = [m.name for m in METHODS.values() if m.engine == engine
             and (tracked is None or (m.name in TRACKED) == tracked)]
    return "|".join(names) if names else "(?!)"


def method_resource(key, method=None):
    """Resource ``key`` of the register jobs of the ``{method}`` wildcard, or of ``method``
    (the template's): the method's ``resources`` override, else the config's.

    A plain value when no method overrides ``key``: a function costs Snakemake an
    inspection per job, which is most of a large cohort's planning time.
    """
    default = config["resources"][key]
    per_method = lambda wc: METHODS[method or wc.method].resources.get(key, default)
    if key == "mem_mb":
        return times_attempt(per_method)
    if method is not None:
        return per_method(None)
    return per_method if any(key in m.resources for m in METHODS.values()) else default


def job_resource(settings, key):
    """Resource ``key`` of a job from a config ``resources`` mapping (``preprocess.resources``,
    ``tbm.resources``); ``mem_mb`` grows with the attempt, as for register jobs."""
    value = settings[key]
    return times_attempt(lambda wc: value) if key == "mem_mb" else value


def times_attempt(mem_mb):
    """A ``mem_mb`` resource: ``mem_mb(wildcards)`` times the attempt, so a job retried
    (``--retries``) after running out of memory asks for more."""
    return lambda wc, attempt: mem_mb(wc) * attempt


def registration_io(engine, tracked=False):
    """Inputs and outputs of the register job of ``engine`` (plus evaluation when merged;
    ``tracked``: the convergence records' slices of a method with track_every > 0)."""
    inputs = dict(fixed=preproc("{fixed}"), moving=preproc("{moving}"),
                  moving_labels=preproc_labels("{moving}"))
    if engine == "nir":
        inputs["params"] = f"{R}/register/{{method}}/params.yaml"
    else:
        inputs["env"] = f"{ANTS_VENV}/nir-ants-env.json"
    outputs = {kind: registered(kind) for kind in
               ("warped", "warped_labels", "warp", "jacobian", "summary")}
    inputs["fixed_labels"] = preproc_labels("{fixed}")  # evaluation, convergence records
    inputs.update(LABEL_TABLE_INPUT)  # names and scores the structures (both)
    if tracked:
        outputs["convergence"] = registered("convergence")
    if EVALUATE_IN_REGISTER:
        outputs["metrics"] = METRICS_CSV
    return inputs, outputs


METRICS_CSV = f"{R}/metrics/{{method}}/{PAIR}.csv"


def kept(outputs):
    """Register-rule outputs, with those the `outputs` config section does not keep marked
    temp(): Snakemake deletes them once the jobs that read them (evaluation, QC panels) end."""
    keep = config["outputs"]
    return {kind: path if keep.get(kind, True) else temp(path) for kind, path in outputs.items()}


def evaluate_shell(products):
    """``nir evaluate`` of one pair; ``products`` says where the registration outputs sit
    (``output`` when evaluation runs inside the register job, else ``input``)."""
    return (
        f"nir evaluate --fixed-labels {{input.fixed_labels:q}} --moving-labels {{input.moving_labels:q}}"
        f" --warped-labels {{{products}.warped_labels:q}} --jacobian {{{products}.jacobian:q}}"
        f" --summary {{{products}.summary:q}} --pair {{wildcards.moving}}_to_{{wildcards.fixed}}"
        " --fixed {wildcards.fixed} --moving {wildcards.moving} --method {wildcards.method}"
        f" --labels-set {{params.labels_set:q}}{LABEL_TABLE_FLAG} --out {{output.metrics:q}}"
    )


def brainmask_flag(wc, input):
    """Params function: ``--brainmask 'FILE'`` (shell-quoted) when the subject has a mask."""
    return f"--brainmask {shlex.quote(input.brainmask)}" if input.brainmask else ""


def preprocess_options():
    """Flags of ``nir preprocess`` from the ``preprocess`` config section."""
    options = config["preprocess"]
    words = [f"--skull-strip {options['skull_strip']}"]
    if not options["bias_correct"]:
        words.append("--no-bias-correct")
    if options["grid_shape"]:
        words.append("--grid-shape " + " ".join(str(n) for n in options["grid_shape"]))
    words.append(f"--grid-spacing {options['grid_spacing']}")
    # on the CPU whatever `device` says: see the preprocess rule
    words.append(f"--device cpu --seed {config['seed']}")
    return " ".join(words)


REPORTED_TABLES = {"summary.csv": "summary", "per_structure.csv": "per_structure",
                   "stats.csv": "stats"}
SOFTWARE_VERSIONS = {ext: f"{R}/software/versions.{ext}" for ext in ("tsv", "html")}


def table_output(name):
    """A table written by ``nir tables``; the main ones go into the report."""
    path = f"{R}/tables/{name}"
    if name not in REPORTED_TABLES:
        return path
    return report(path, category="Tables", caption=f"../report/{REPORTED_TABLES[name]}.rst")


def figure_output(name, ext):
    """A cohort figure written by ``nir figures``, marked for the report."""
    return report(f"{R}/figures/{name}.{ext}", category="Figures", subcategory=ext.upper(),
                  caption=f"../report/{name}.rst")


def folder_of(kind, index=0):
    """Params function: the folder of the rule's ``input`` or ``output`` file ``index``."""
    if kind == "input":
        return lambda wc, input: os.path.dirname(input[index])
    return lambda wc, output: os.path.dirname(output[index])


# The paper outputs (paper.smk): methods with track_every > 0 and what the paper job writes.
TRACKED = [m.name for m in METHODS.values() if m.engine == "nir" and m.nir_params().track_every]
PANEL_METHODS = check_panel_methods(config["paper"]["panel_methods"], TRACKED)
PANEL_PAIR = check_panel_pair(config["paper"]["panel_pair"], PAIRS)
PAPER_CAPTIONS = {  # paper table -> its caption in workflow/report (others: not in the report)
    "convergence.csv": "paper_convergence_records",
    "convergence_end.csv": "paper_convergence_end",
    "ranking.csv": "paper_ranking_table",
    "ranking.tex": "paper_ranking_table",
    "summary.tex": "paper_summary_table",
}
PAPER_OUTPUTS = (
    [f"{R}/paper/{name}" for name in PAPER_TABLES]
    + [f"{R}/paper/{name}.{ext}" for name in PAPER_FIGURES for ext in FIGURE_FORMATS]
    if TRACKED and PAIRS
    else []
)


def paper_output(name):
    """A paper table or figure; the figures and captioned tables go into the report."""
    path = f"{R}/paper/{name}"
    stem, ext = name.split(".", 1)
    if ext in FIGURE_FORMATS:
        return report(path, category="Paper", subcategory=ext.upper(),
                      caption=f"../report/paper_{stem}.rst")
    if name not in PAPER_CAPTIONS:
        return path
    return report(path, category="Paper", subcategory="Tables",
                  caption=f"../report/{PAPER_CAPTIONS[name]}.rst")


# The template build (template.smk, included when template.build is on; TEMPLATE is its
# nir.study.template_plan.TemplatePlan).
def template_outputs(final):
    """The outputs of a template registration in the last round (``final``) or an earlier
    one, those not kept marked temp()."""
    paths = {kind: TEMPLATE.registered(kind) for kind in TEMPLATE.kinds(final)}
    return {kind: path if TEMPLATE.kept(kind, final) else temp(path)
            for kind, path in paths.items()}


def round_outputs(kind, iteration="{iteration}"):
    """One output kind of every subject's registration in template round ``iteration``."""
    return [TEMPLATE.registered(kind, iteration, s) for s in SUBJECTS]
