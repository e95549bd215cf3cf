"""FreeSurfer aseg label names, the default evaluation structures and the left/right merge map."""

from __future__ import annotations

from collections.abc import Iterable

from nir.errors import NirInputError

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


def label_name(label: int) -> str:
    """The FreeSurfer name of ``label``, or ``label-<id>`` when it is not in the table."""
    return LABEL_NAMES.get(int(label), f"label-{int(label)}")


def merged_name(name: str) -> str:
    """Drop a ``Left-``/``Right-`` prefix: ``Left-Hippocampus`` -> ``Hippocampus``."""
    for prefix in ("Left-", "Right-"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


MERGE_MAP: dict[str, str] = {name: merged_name(name) for name in LABEL_NAMES.values()}


def parse_label_set(spec: str, present: Iterable[int]) -> list[int]:
    """Labels to evaluate: ``aseg`` (the defaults), ``all`` (every non-zero label in ``present``)
    or a comma-separated list of IDs such as ``2,41,17``."""
    spec = spec.strip()
    if spec == "aseg":
        return list(DEFAULT_STRUCTURES)
    if spec == "all":
        return sorted({int(v) for v in present if int(v) != 0})
    try:
        labels = sorted({int(part) for part in spec.split(",") if part.strip()})
    except ValueError:
        labels = []
    if not labels or any(v <= 0 for v in labels):
        raise NirInputError("--labels-set", f"expected 'aseg', 'all' or positive label IDs "
                                            f"separated by commas, got {spec!r}")
    return labels
