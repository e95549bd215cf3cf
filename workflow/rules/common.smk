# Cohort, pairs and output paths, computed once from the validated config by nir.cohort.
import os
import sys

import pandas as pd
from snakemake.utils import validate

from nir.cohort import (
    ID_REGEX,
    PAIR_MEMBER_REGEX,
    check_id,
    check_suffix,
    cohort_from_config,
    make_pairs,
)
from nir.errors import NirInputError
from nir.params import load_params

# Shell jobs call `nir`: use the one installed beside this Snakemake (e.g. .venv/bin).
os.environ.update(PATH=os.pathsep.join([os.path.dirname(sys.executable), os.getenv("PATH", "")]))

R = config["results"].rstrip("/")
DEMO = "cohort" not in config and "bids" not in config

SUBJECT_LIST, COHORT_SOURCE = cohort_from_config(config, f"{R}/demo")
if "cohort" in config:
    validate(pd.read_csv(config["cohort"], sep="\t", dtype=str, keep_default_na=False),
             "../schemas/cohort.schema.yaml")
if config["preprocessed"]:
    check_suffix(SUBJECT_LIST, ".nii.gz", COHORT_SOURCE)
SUBJECTS = {s.id: s for s in SUBJECT_LIST}
PAIRS = make_pairs(list(SUBJECTS), **config["pairs"])
METHODS = config["methods"]
for _name, _params in METHODS.items():
    check_id(_name, "config: methods", "method name")
    try:
        load_params(None, **_params)
    except NirInputError as exc:
        raise NirInputError(f"config: methods.{_name}", exc.problem) from None
QC_PAIRS = PAIRS[: config["evaluation"]["qc_pairs"]]


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
    """An output of ``nir register``: warped, warped_labels, warp, jacobian or summary."""
    suffix = "json" if kind == "summary" else "nii.gz"
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

    return yaml.safe_dump(dict(METHODS[method]), sort_keys=True)


def preprocess_options():
    """Flags of ``nir preprocess`` from the ``preprocess`` config section."""
    options = config["preprocess"]
    words = [f"--skull-strip {options['skull_strip']}"]
    if not options["bias_correct"]:
        words.append("--no-bias-correct")
    if options["grid_shape"]:
        words.append("--grid-shape " + " ".join(str(n) for n in options["grid_shape"]))
    words.append(f"--grid-spacing {options['grid_spacing']}")
    words.append(f"--device {config['device']} --seed {config['seed']}")
    return " ".join(words)


TABLES = ("pairs.csv", "summary.csv", "summary.md", "summary.tex", "per_structure.csv",
          "stats.csv")
REPORTED_TABLES = {"summary.csv": "summary", "per_structure.csv": "per_structure",
                   "stats.csv": "stats"}
FIGURES = ("dice_per_structure", "dice_vs_folding", "runtime")


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
