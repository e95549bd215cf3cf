"""Structure names and scored labels: FreeSurfer's aseg by default, else a label table's.

Without a :class:`~nir.evaluation.label_table.LabelTable` every name is FreeSurfer's and
``aseg`` (the 32 main structures) is the default label set; with one, names come from the table
and its non-zero ids are the default set (``table``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from nir.errors import NirInputError
from nir.evaluation.label_table import LabelTable

# Main aseg structures by FreeSurfer ID (FreeSurferColorLUT names).
ASEG_STRUCTURES: dict[int, str] = {
    2: "Left-Cerebral-White-Matter",
    3: "Left-Cerebral-Cortex",
    4: "Left-Lateral-Ventricle",
    5: "Left-Inf-Lat-Vent",
    7: "Left-Cerebellum-White-Matter",
    8: "Left-Cerebellum-Cortex",
    10: "Left-Thalamus",
    11: "Left-Caudate",
    12: "Left-Putamen",
    13: "Left-Pallidum",
    14: "3rd-Ventricle",
    15: "4th-Ventricle",
    16: "Brain-Stem",
    17: "Left-Hippocampus",
    18: "Left-Amygdala",
    24: "CSF",
    26: "Left-Accumbens-area",
    28: "Left-VentralDC",
    41: "Right-Cerebral-White-Matter",
    42: "Right-Cerebral-Cortex",
    43: "Right-Lateral-Ventricle",
    44: "Right-Inf-Lat-Vent",
    46: "Right-Cerebellum-White-Matter",
    47: "Right-Cerebellum-Cortex",
    49: "Right-Thalamus",
    50: "Right-Caudate",
    51: "Right-Putamen",
    52: "Right-Pallidum",
    53: "Right-Hippocampus",
    54: "Right-Amygdala",
    58: "Right-Accumbens-area",
    60: "Right-VentralDC",
}

# Other labels that occur in aseg.mgz, named only so that ``--labels-set all`` reads well.
OTHER_ASEG_NAMES: dict[int, str] = {
    30: "Left-vessel",
    31: "Left-choroid-plexus",
    62: "Right-vessel",
    63: "Right-choroid-plexus",
    72: "5th-Ventricle",
    77: "WM-hypointensities",
    80: "non-WM-hypointensities",
    85: "Optic-Chiasm",
    251: "CC_Posterior",
    252: "CC_Mid_Posterior",
    253: "CC_Central",
    254: "CC_Mid_Anterior",
    255: "CC_Anterior",
}

LABEL_NAMES: dict[int, str] = {**ASEG_STRUCTURES, **OTHER_ASEG_NAMES}

DEFAULT_STRUCTURES: tuple[int, ...] = tuple(sorted(ASEG_STRUCTURES))


def freesurfer_numbered(table: LabelTable) -> bool:
    """Whether ``table`` names all 32 main aseg ids as FreeSurfer does (case aside; FreeSurfer
    6's ``-Proper`` suffix, as in ``Left-Thalamus-Proper``, allowed): a FreeSurfer LUT."""
    for label, name in ASEG_STRUCTURES.items():
        given = table.names.get(label, "").casefold()
        if given not in (name.casefold(), f"{name}-Proper".casefold()):
            return False
    return True


def label_name(label: int, table: LabelTable | None = None) -> str:
    """The name of ``label``: the table's; else FreeSurfer's (without a table, or when the
    table is FreeSurfer-numbered); else ``label-<id>``."""
    label = int(label)
    if table is not None:
        if label in table.names:
            return table.names[label]
        if not freesurfer_numbered(table):
            return f"label-{label}"
    return LABEL_NAMES.get(label, f"label-{label}")


def merged_name(name: str) -> str:
    """Drop a ``Left-``/``Right-`` prefix: ``Left-Hippocampus`` -> ``Hippocampus``."""
    for prefix in ("Left-", "Right-"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


MERGE_MAP: dict[str, str] = {name: merged_name(name) for name in LABEL_NAMES.values()}


def default_label_set(table: LabelTable | None) -> str:
    """The label set scored when none is given: ``table`` with a label table, else ``aseg``."""
    return "aseg" if table is None else "table"


def _ids(spec: str, source: str) -> list[int]:
    try:
        labels = sorted({int(part) for part in spec.split(",") if part.strip()})
    except ValueError:
        labels = []
    if not labels or any(v <= 0 for v in labels):
        raise NirInputError(source, f"expected 'aseg', 'table', 'all' or positive label IDs "
                                    f"separated by commas, got {spec!r}")
    return labels


def parse_label_set(spec: str | None, present: Iterable[int], table: LabelTable | None = None,
                    source: str = "--labels-set") -> list[int]:
    """Labels to evaluate: ``aseg`` (FreeSurfer's 32 main structures), ``table`` (the label
    table's non-zero ids), ``all`` (every non-zero label in ``present``) or a comma-separated
    list of IDs such as ``2,41,17``; ``None`` is :func:`default_label_set`.

    With a table that is not FreeSurfer-numbered, ``aseg`` is refused (its ids would name other
    structures there), and so is any listed id the table does not name.  ``source`` (the
    option or config key) is named in errors.
    """
    spec = (default_label_set(table) if spec is None else spec).strip()
    if spec == "table":
        if table is None:
            raise NirInputError(source, "'table' needs a label table (--label-table, "
                                        "evaluation.label_table)")
        return list(table.structures)
    if spec == "aseg":
        if table is not None and not freesurfer_numbered(table):
            raise NirInputError(source, f"'aseg' means FreeSurfer's aseg ids, but the label "
                                        f"table {table.path} numbers structures otherwise (id 2 "
                                        f"is {label_name(2, table)!r}); use 'table', 'all' or "
                                        "the table's ids")
        return list(DEFAULT_STRUCTURES)
    if spec == "all":
        return sorted({int(v) for v in present if int(v) != 0})
    labels = _ids(spec, source)
    if table is not None:
        unnamed = [v for v in labels if v not in table.names]
        if unnamed:
            raise NirInputError(source, f"label(s) {format_labels(unnamed)} are not in the label "
                                        f"table {table.path}")
    return labels


def engine_label_set(spec: str | None, table: LabelTable | None) -> str:
    """``spec`` as ``nir register --labels-set`` takes it (the engine knows no label table):
    ``table`` (or the default with a table) becomes the table's ids; others are checked and
    passed on."""
    labels = parse_label_set(spec, (), table)
    spec = (default_label_set(table) if spec is None else spec).strip()
    return ",".join(map(str, labels)) if spec == "table" else spec


def format_labels(labels: Sequence[int], limit: int = 12) -> str:
    """``1, 2, 3`` or, for long lists, the first ``limit`` and how many more."""
    text = ", ".join(map(str, labels[:limit]))
    return text if len(labels) <= limit else f"{text} and {len(labels) - limit} more"
