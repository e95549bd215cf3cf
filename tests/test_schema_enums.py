"""The config schema's enums and patterns are nir's: a value the schema lets through is one the
code accepts, and every value the code offers can be written in a config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from nir.device import DEVICE_PATTERN, resolve_device
from nir.engine.params import FIELDS, MODES, PRESETS, SAMPLERS
from nir.errors import NirInputError
from nir.preprocess.brain_extraction import METHODS as SKULL_STRIP
from nir.spatial.displacement import WARP_DTYPES
from nir.stats.tbm import CORRECTIONS
from nir.study.methods import ENGINES

SCHEMA = yaml.safe_load((Path(__file__).resolve().parents[1]
                         / "workflow/schemas/config.schema.yaml").read_text())
PROPS = SCHEMA["properties"]
METHOD = PROPS["methods"]["additionalProperties"]["properties"]


@pytest.mark.parametrize(("enum", "ours"), [
    (METHOD["engine"]["enum"], ENGINES),
    (METHOD["preset"]["enum"], tuple(PRESETS)),
    (METHOD["field"]["enum"], FIELDS),
    (METHOD["mode"]["enum"], MODES),
    (METHOD["sampler"]["enum"], SAMPLERS),
    (PROPS["preprocess"]["properties"]["skull_strip"]["enum"], SKULL_STRIP),
    (PROPS["outputs"]["properties"]["warp_dtype"]["enum"], WARP_DTYPES),
    (PROPS["tbm"]["properties"]["correction"]["enum"], CORRECTIONS),
], ids=["engine", "preset", "field", "mode", "sampler", "skull_strip", "warp_dtype",
        "correction"])
def test_schema_enum_is_nirs(enum: list[str], ours: tuple[str, ...]) -> None:
    assert sorted(enum) == sorted(ours)


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "gpu", "cuda:",
                                  "cuda:x", "cuda0", "cuda:1:2"])
def test_schema_device_pattern_is_nirs(name: str) -> None:
    schema_accepts = re.search(PROPS["device"]["pattern"], name) is not None
    assert schema_accepts == (re.fullmatch(DEVICE_PATTERN, name) is not None)
    if not schema_accepts:
        with pytest.raises(NirInputError, match="unknown device"):
            resolve_device(name)
