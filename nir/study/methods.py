"""Named registration methods of a workflow config: NIR parameter sets or the ANTs baseline.

A method is ``name: {engine: nir|ants, resources: {...}, ...options}``.  ``engine`` defaults to
``nir``, whose options are :class:`nir.engine.params.RegistrationParams` fields; ``ants`` takes one
option, ``transform`` (an antspyx preset).  ``resources`` (threads, mem_mb, runtime, gpu)
overrides the workflow's per-job resources for that method, e.g. a longer runtime for SyN.
The name ``affine`` is reserved for the affine-only baseline that every table includes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nir.engine.params import RegistrationParams, load_params
from nir.errors import NirInputError
from nir.study.cohort import check_id

ENGINES = ("nir", "ants")
RESOURCE_KEYS = ("threads", "mem_mb", "runtime", "gpu")
RESERVED = ("affine",)
DEFAULT_TRANSFORM = "antsRegistrationSyN[so]"
# Deformable antspyx presets; "[so]" and "SyNOnly" have no affine stage (inputs already aligned).
TRANSFORMS = ("antsRegistrationSyN[so]", "antsRegistrationSyNQuick[so]",
              "antsRegistrationSyN[s]", "antsRegistrationSyNQuick[s]", "SyNOnly", "SyN",
              "SyNCC", "SyNRA", "SyNAggro", "ElasticSyN")


@dataclass(frozen=True)
class Method:
    """One configured method: its engine, engine options and resource overrides."""

    name: str
    engine: str
    options: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, int] = field(default_factory=dict)

    def nir_params(self) -> RegistrationParams:
        """The NIR parameters of an ``engine: nir`` method (``preset`` names a preset)."""
        return load_params(None, **self.options)


def check_transform(transform: str) -> str:
    """``transform`` if it is a supported antspyx deformable preset, else NirInputError."""
    if transform not in TRANSFORMS:
        raise NirInputError("--transform", f"unsupported ANTs transform {transform!r}; "
                                           f"choose one of {', '.join(TRANSFORMS)}")
    return transform


def _check_resources(name: str, resources: Any) -> dict[str, int]:
    source = f"config: methods.{name}.resources"
    if not isinstance(resources, dict):
        raise NirInputError(source, "must be a mapping")
    for key, value in resources.items():
        if key not in RESOURCE_KEYS:
            raise NirInputError(source, f"unknown key {key!r}; use {', '.join(RESOURCE_KEYS)}")
        least = 0 if key == "gpu" else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise NirInputError(source, f"{key} must be an integer >= {least}, got {value!r}")
    return dict(resources)


def parse_method(name: str, spec: dict[str, Any]) -> Method:
    """Validate one config entry; errors name ``config: methods.NAME``."""
    check_id(name, "config: methods", "method name")
    source = f"config: methods.{name}"
    if name in RESERVED:
        raise NirInputError(source, f"{name!r} is reserved for the affine-only baseline")
    options = dict(spec or {})
    engine = options.pop("engine", "nir")
    resources = _check_resources(name, options.pop("resources", {}))
    if engine not in ENGINES:
        raise NirInputError(source, f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    try:
        if engine == "nir":
            Method(name, engine, options).nir_params()
        else:
            unknown = set(options) - {"transform"}
            if unknown:
                raise NirInputError(None, f"unknown ANTs option(s) {sorted(unknown)}; "
                                          "only 'transform' is accepted")
            options["transform"] = check_transform(options.get("transform", DEFAULT_TRANSFORM))
    except NirInputError as exc:
        raise NirInputError(source, exc.problem) from None
    return Method(name, engine, options, resources)


def parse_methods(methods: dict[str, dict[str, Any]]) -> dict[str, Method]:
    """Every configured method by name, validated."""
    return {name: parse_method(name, spec) for name, spec in methods.items()}
