"""Workflow method specs: NIR parameter sets and the ANTs baseline, validated up front."""

from __future__ import annotations

import pytest

from nir.engine.params import PRESETS, RegistrationParams, load_params
from nir.errors import NirInputError
from nir.study.methods import DEFAULT_TRANSFORM, parse_methods


def test_engines_defaults_and_resources() -> None:
    methods = parse_methods({
        "nir-v": {"mode": "velocity", "iterations": 10},
        "syn": {"engine": "ants", "resources": {"runtime": 120, "threads": 2}},
    })
    assert methods["nir-v"].engine == "nir"
    assert methods["nir-v"].nir_params().mode == "velocity"
    assert methods["nir-v"].nir_params().iterations == 10
    assert methods["syn"].engine == "ants"
    assert methods["syn"].options == {"transform": DEFAULT_TRANSFORM}
    assert methods["syn"].resources == {"runtime": 120, "threads": 2}


@pytest.mark.parametrize("name,spec,problem", [
    ("affine", {}, "reserved"),
    ("a;b", {}, "unsafe method name"),
    ("x", {"engine": "elastix"}, "unknown engine"),
    ("x", {"itrations": 3}, "unknown parameter"),
    ("x", {"engine": "ants", "transform": "Rigid"}, "unsupported ANTs transform"),
    ("x", {"engine": "ants", "mode": "velocity"}, "unknown ANTs option"),
    ("x", {"resources": {"cpus": 2}}, "unknown key 'cpus'"),
    ("x", {"resources": {"threads": 0}}, "threads must be an integer >= 1"),
    ("x", {"preset": "fastest"}, "unknown preset 'fastest'"),
])
def test_bad_method_names_the_config_entry(name, spec, problem) -> None:
    with pytest.raises(NirInputError, match=problem) as info:
        parse_methods({name: spec})
    assert info.value.path.startswith("config: methods")


def test_presets_differ_and_single_parameters_win_over_them(tmp_path) -> None:
    defaults = RegistrationParams()
    for name, changes in PRESETS.items():
        params = load_params(preset=name)
        assert {k: getattr(params, k) for k in changes} == changes
        assert (params == defaults) == (name == "default")
    method = parse_methods({"quick": {"preset": "fast", "iterations": 7}})["quick"]
    params = method.nir_params()
    assert params.iterations == 7
    assert params.coarse_iterations == PRESETS["fast"]["coarse_iterations"]
    config = tmp_path / "params.yaml"  # what the workflow writes for that method
    config.write_text("iterations: 7\npreset: fast\n")
    assert load_params(config) == params
    assert load_params(config, preset="default").coarse_iterations == defaults.coarse_iterations
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: slow\n")
    with pytest.raises(NirInputError, match="unknown preset 'slow'") as info:
        load_params(bad)
    assert info.value.path.endswith("bad.yaml")
