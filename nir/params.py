"""Every registration parameter, its default and its unit, in one place.

A YAML file passed with ``--config`` may set any field below; command-line flags win over it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from nir.errors import NirInputError

MODES = ("displacement", "velocity")
SAMPLERS = ("random", "downsize", "minipatch", "hybrid")
FINE_SAMPLERS = ("downsize", "minipatch")
ENCODINGS = ("fourier", "grid")
ODE_METHODS = ("euler", "midpoint", "heun3", "rk4")


@dataclass
class RegistrationParams:
    """Parameters of one NIR registration; defaults tuned on real 1 mm brain pairs on 2 CPU cores.

    "Field units": one unit is half the largest extent of the fixed image, in mm (so about
    112 mm for a 160x192x224 mm box); see :mod:`nir.frame`.
    """

    # --- field ---------------------------------------------------------------------------
    mode: str = "velocity"  # velocity (stationary, integrated by torchdiffeq) | displacement
    fourier_features: int = 64  # m random Fourier frequencies (encoding width 2m)
    fourier_sigma: float = 2.0  # std of the frequencies of NF1, cycles per field unit
    fine_fourier_sigma: float = 4.0  # the same for NF2 when fine_encoding is fourier
    fine_encoding: str = "grid"  # hybrid NF2 encoding: grid (learnable feature grids) | fourier
    grid_spacings_mm: list[float] = field(default_factory=lambda: [18.0, 9.0, 4.5])
    #                                  node spacing of each feature-grid level of NF2, mm
    grid_features: int = 4  # channels per feature-grid level
    hidden: int = 64  # width of each SIREN layer
    layers: int = 3  # number of sine layers
    omega0: float = 1.0  # SIREN frequency factor of the first sine layer
    omega0_hidden: float = 1.0  # SIREN frequency factor of the other sine layers
    output_scale: float = 0.1  # network output x this = displacement/velocity, field units
    ode_method: str = "rk4"  # torchdiffeq fixed-step solver (velocity mode)
    ode_steps: int = 1  # solver steps over t in [0, 1] (velocity mode)
    # --- sampling ------------------------------------------------------------------------
    sampler: str = "hybrid"  # random | downsize | minipatch | hybrid
    coarse_iterations: int = 150  # hybrid phase 1: NF1 with the downsize sampler
    iterations: int = 150  # hybrid phase 2 (NF2), or all iterations otherwise
    downsize_spacing_mm: float = 3.0  # strided-grid step in mm (rounded to whole voxels);
    #                                   images are Gaussian-blurred to that scale first
    fine_sampler: str = "downsize"  # hybrid phase 2 sampler: downsize | minipatch
    fine_spacing_mm: float = 2.0  # strided-grid step of a downsize phase 2, mm
    patches: int = 6  # mini-patches per iteration, centred on the fixed foreground
    patch_size: int = 16  # mini-patch side, voxels
    field_stride: int = 2  # evaluate the field every n samples of a batch, interpolate between
    random_points: int = 8192  # random sampler: points per iteration (2x2x2 stencils each)
    # --- loss and optimiser --------------------------------------------------------------
    ncc_window: int = 9  # local NCC window side, in samples of the sampled grid (odd)
    folding_weight: float = 10.0  # x mean ReLU(-det J)
    volume_weight: float = 0.0  # x mean |1 - det J|
    smoothness_weight: float = 0.3  # x mean ||grad u||^2 (diffusion regulariser)
    lr: float = 1e-2  # Adam learning rate
    lr_final_ratio: float = 0.1  # exponential decay to lr x this at the last iteration
    plateau_patience: int = 0  # stop after this many iterations without improvement (0: off)
    plateau_tolerance: float = 1e-4  # improvement of the smoothed loss that counts
    # --- inference -----------------------------------------------------------------------
    chunk_points: int = 262144  # field evaluations per batch (bounds memory)
    inference_stride: int = 2  # evaluate every n voxels, upsample the displacement (1: all)
    label_interpolation: str = "onehot"  # onehot (GenericLabel-like) | nearest

    def validate(self, source: str | None = None) -> RegistrationParams:
        """Check choices and ranges; raise NirInputError naming ``source`` on a bad value."""
        checks = [
            (self.mode in MODES, f"mode must be one of {MODES}, got {self.mode!r}"),
            (self.sampler in SAMPLERS, f"sampler must be one of {SAMPLERS}, got {self.sampler!r}"),
            (self.fine_sampler in FINE_SAMPLERS,
             f"fine_sampler must be one of {FINE_SAMPLERS}, got {self.fine_sampler!r}"),
            (self.fine_encoding in ENCODINGS,
             f"fine_encoding must be one of {ENCODINGS}, got {self.fine_encoding!r}"),
            (len(self.grid_spacings_mm) > 0 and all(isinstance(s, (int, float)) and s > 0
                                                   for s in self.grid_spacings_mm),
             "grid_spacings_mm must be a non-empty list of positive spacings"),
            (self.grid_features >= 1, "grid_features must be >= 1"),
            (self.label_interpolation in ("onehot", "nearest"),
             "label_interpolation must be onehot or nearest"),
            (self.iterations >= 0 and self.coarse_iterations >= 0, "iterations must be >= 0"),
            (self.lr > 0, "lr must be > 0"),
            (self.downsize_spacing_mm > 0 and self.fine_spacing_mm > 0,
             "downsize_spacing_mm and fine_spacing_mm must be > 0"),
            (self.patch_size >= 2 and self.patches >= 1, "patch_size must be >= 2, patches >= 1"),
            (self.ncc_window >= 1 and self.ncc_window % 2 == 1, "ncc_window must be odd"),
            (self.ode_steps >= 1, "ode_steps must be >= 1"),
            (self.ode_method in ODE_METHODS, f"ode_method must be one of {ODE_METHODS}"),
            (self.chunk_points >= 1024, "chunk_points must be >= 1024"),
            (self.inference_stride >= 1, "inference_stride must be >= 1"),
            (self.field_stride >= 1, "field_stride must be >= 1"),
        ]
        for ok, problem in checks:
            if not ok:
                raise NirInputError(source, problem)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_params(path: str | Path | None = None, **overrides: Any) -> RegistrationParams:
    """Defaults, updated by a YAML file, updated by non-None ``overrides``; validated."""
    values: dict[str, Any] = {}
    known = {f.name: f.type for f in fields(RegistrationParams)}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise NirInputError(path, f"cannot read parameter YAML ({exc})") from exc
        if not isinstance(loaded, dict):
            raise NirInputError(path, "parameter YAML must be a mapping of name: value")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise NirInputError(path, f"unknown parameter(s) {unknown}; known: {sorted(known)}")
    try:
        params = RegistrationParams(**values)
        defaults = RegistrationParams()
        for name, value in values.items():
            default = getattr(defaults, name)
            if isinstance(default, float) and isinstance(value, int):
                setattr(params, name, float(value))
            elif type(default) is not type(value):
                raise TypeError(f"{name} must be {type(default).__name__}, got {value!r}")
    except TypeError as exc:
        raise NirInputError(path, str(exc)) from exc
    return params.validate(None if path is None else str(path))
