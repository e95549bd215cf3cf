"""Every registration parameter, its default and its unit, in one place.

A named preset (:data:`PRESETS`: fast, default, accurate) sets a group of them; a YAML file
passed with ``--config`` may set any field below (and ``preset``) on top of it; command-line
flags win over both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from nir.engine.samplers import sampler_names
from nir.errors import NirInputError

FIELDS = ("lattice", "continuous")
MODES = ("displacement", "velocity")
FINE_SAMPLERS = sampler_names()  # every registered sampler (nir.engine.samplers)
SAMPLERS = (*FINE_SAMPLERS, "hybrid")  # hybrid: NF1 downsize, then NF2 with fine_sampler
ENCODINGS = ("fourier", "grid")
ODE_METHODS = ("euler", "midpoint", "heun3", "rk4")
PRECISIONS = ("auto", "float32", "bfloat16")


# Named trade-offs of speed and accuracy: the fields each one changes from the defaults.
# Seconds and Dice of each on real 1 mm pairs: benchmarks/register_pairs.py and the README.
# "paper" is the paper's NIR on the continuous field; README "The paper's preset" gives the
# source of each value (the paper where it states one, otherwise what was chosen and why).
PRESETS: dict[str, dict[str, Any]] = {
    "fast": {"coarse_iterations": 60, "iterations": 100, "fine_batch_fraction": 0.063},
    "default": {},
    "accurate": {"fine_lattice_mm": 1.5, "iterations": 300, "refine_iterations": 120},
    "paper": {"field": "continuous", "mode": "displacement", "sampler": "hybrid", "lr": 1e-2,
              "fine_sampler": "minipatch", "fine_encoding": "fourier",
              "coarse_iterations": 200, "iterations": 200, "downsize_spacing_mm": 4.0,
              "patches": 4, "patch_size": 32, "coarse_ncc_window": 9, "ncc_window": 9,
              "smoothness_weight": 0.0},
}


@dataclass
class RegistrationParams:
    """Parameters of one NIR registration.

    Defaults were tuned on two real 1 mm brain pairs (aligned160 sub-02 -> sub-01 and
    sub-04 -> sub-03); benchmarks/register_pairs.py reports them on held-out pairs too.

    "Field units": one unit is half the largest extent of the fixed image, in mm (so about
    112 mm for a 160x192x224 mm box); see :mod:`nir.spatial.frame`.
    """

    # --- field ---------------------------------------------------------------------------
    field: str = "lattice"  # lattice: the network is evaluated on mm lattices and read
    #                         trilinearly (fast) | continuous: the paper's NIR, the network is
    #                         evaluated at every coordinate (nir.engine.continuous)
    mode: str = "velocity"  # velocity (stationary, integrated by torchdiffeq) | displacement
    fourier_features: int = 64  # m random Fourier frequencies (encoding width 2m)
    fourier_sigma: float = 2.0  # std of the frequencies of NF1, cycles per field unit
    fine_fourier_sigma: float = 4.0  # the same for NF2 when fine_encoding is fourier
    fine_encoding: str = "grid"  # hybrid NF2 encoding: grid (learnable feature grids) | fourier
    grid_levels: int = 3  # feature-grid levels of NF2: nodes 1, 2, 4, ... lattice steps apart
    grid_features: int = 4  # channels per feature-grid level
    hidden: int = 64  # width of each SIREN layer of NF1 (and of a single-phase field)
    fine_hidden: int = 32  # width of each SIREN layer of the hybrid NF2
    layers: int = 2  # number of sine layers
    omega0: float = 1.0  # SIREN frequency factor of the first sine layer
    omega0_hidden: float = 1.0  # SIREN frequency factor of the other sine layers
    output_scale: float = 0.1  # network output x this = displacement/velocity, field units
    lattice_mm: float = 8.0  # NF1 is evaluated on a lattice of nodes this far apart, mm,
    #                          and read between them trilinearly
    fine_lattice_mm: float = 2.0  # the same for the hybrid NF2, mm
    ode_method: str = "midpoint"  # torchdiffeq fixed-step solver (velocity mode); a lattice
    #                               field integrates at its nodes, a continuous one per point
    ode_steps: int = 1  # solver steps over t in [0, 1] (velocity mode)
    precision: str = "auto"  # SIREN arithmetic: auto (bfloat16 on CUDA, float32 on CPU) |
    #                          float32 | bfloat16
    # --- sampling ------------------------------------------------------------------------
    sampler: str = "hybrid"  # random | downsize | minipatch | hybrid
    coarse_iterations: int = 100  # hybrid phase 1: NF1 with the downsize sampler
    iterations: int = 250  # hybrid phase 2 (NF2), or all iterations otherwise
    downsize_spacing_mm: float = 4.0  # strided-grid step of phase 1 in mm (whole voxels per
    #                                   axis)
    coarse_blur: float = 0.5  # phase 1 images: Gaussian sigma = this x its step (0: none)
    fine_sampler: str = "downsize"  # hybrid phase 2 sampler: any of FINE_SAMPLERS
    fine_spacing_mm: float = 2.0  # strided-grid step of a downsize phase 2, mm (whole voxels
    #                               per axis; the summary's sample_step_mm gives the step used)
    fine_blur: float = 0.0  # phase 2 images: Gaussian sigma = this x its step (0: none)
    fine_batch_fraction: float = 0.15  # a downsize phase 2 batch is a random sub-box holding
    #                                   this fraction of the grid; NF2 is evaluated there only
    refine_iterations: int = 0  # hybrid phase 3 (0: off): a residual field NF3, built like NF2,
    #                             fitted on a finer downsize grid
    refine_spacing_mm: float = 1.0  # strided-grid step of phase 3, mm (whole voxels per axis)
    refine_lattice_mm: float = 2.0  # NF3's lattice step, mm
    refine_batch_fraction: float = 0.1  # phase 3 batch: a random sub-box of this fraction
    refine_ncc_window: int = 11  # phase 3 local NCC window side, in samples (odd)
    refine_smoothness_weight: float = 0.6  # phase 3 diffusion weight (smoothness_weight's role)
    crop_margin_mm: float = 6.0  # samples lie in the fixed foreground's box plus this margin
    patches: int = 6  # mini-patches per iteration, centred on the fixed foreground
    patch_size: int = 16  # mini-patch side, voxels along the finest axis (same mm on others)
    random_points: int = 8192  # random sampler: points per iteration (2x2x2 stencils each)
    # --- loss and optimiser --------------------------------------------------------------
    # NCC windows: a side in samples along the most finely sampled axis, and the same mm
    # along the others (so 9 x 9 x 3 samples for 1 x 1 x 3 mm steps)
    coarse_ncc_window: int = 11  # phase 1 local NCC window side, in samples (odd)
    ncc_window: int = 9  # phase 2 (or single-phase) local NCC window side, in samples (odd)
    folding_weight: float = 10.0  # x mean ReLU(-det J) over the lattice
    volume_weight: float = 0.0  # x mean |1 - det J| over the lattice
    smoothness_weight: float = 0.3  # x mean ||grad u||^2 over the lattice (diffusion)
    lr: float = 3e-2  # Adam learning rate
    lr_final_ratio: float = 0.1  # exponential decay to lr x this at the last iteration
    plateau_patience: int = 0  # stop after this many iterations without improvement (0: off)
    plateau_tolerance: float = 1e-4  # improvement of the smoothed loss that counts
    # --- outputs -------------------------------------------------------------------------
    label_interpolation: str = "onehot"  # onehot (GenericLabel-like) | nearest
    track_every: int = 0  # record mean Dice and % det J <= 0 every N iterations in the
    #                       summary (0: off; needs fixed and moving labels; nir.engine.tracking)

    def validate(self, source: str | None = None) -> RegistrationParams:
        """Check choices and ranges; raise NirInputError naming ``source`` on a bad value."""
        checks = [
            (self.field in FIELDS, f"field must be one of {FIELDS}, got {self.field!r}"),
            (not (self.field == "continuous" and self.sampler == "hybrid"
                  and self.fine_encoding == "grid"),
             "fine_encoding: grid needs field: lattice (the feature grids live on NF2's "
             "lattice); use fine_encoding: fourier with field: continuous"),
            (self.mode in MODES, f"mode must be one of {MODES}, got {self.mode!r}"),
            (self.sampler in SAMPLERS, f"sampler must be one of {SAMPLERS}, got {self.sampler!r}"),
            (self.fine_sampler in FINE_SAMPLERS,
             f"fine_sampler must be one of {FINE_SAMPLERS}, got {self.fine_sampler!r}"),
            (self.fine_encoding in ENCODINGS,
             f"fine_encoding must be one of {ENCODINGS}, got {self.fine_encoding!r}"),
            (self.grid_levels >= 1 and self.grid_features >= 1,
             "grid_levels and grid_features must be >= 1"),
            (self.label_interpolation in ("onehot", "nearest"),
             "label_interpolation must be onehot or nearest"),
            (min(self.iterations, self.coarse_iterations, self.refine_iterations) >= 0,
             "iterations, coarse_iterations and refine_iterations must be >= 0"),
            (self.refine_iterations == 0 or (self.sampler == "hybrid" and self.field == "lattice"),
             "refine_iterations > 0 (phase 3) needs sampler: hybrid and field: lattice"),
            (self.refine_spacing_mm > 0 and self.refine_lattice_mm > 0,
             "refine_spacing_mm and refine_lattice_mm must be > 0"),
            (0 < self.refine_batch_fraction <= 1, "refine_batch_fraction must be in (0, 1]"),
            (self.refine_ncc_window >= 1 and self.refine_ncc_window % 2 == 1,
             "refine_ncc_window must be odd"),
            (self.track_every >= 0, "track_every must be >= 0"),
            (self.lr > 0, "lr must be > 0"),
            (self.downsize_spacing_mm > 0 and self.fine_spacing_mm > 0,
             "downsize_spacing_mm and fine_spacing_mm must be > 0"),
            (self.patch_size >= 2 and self.patches >= 1, "patch_size must be >= 2, patches >= 1"),
            (self.ncc_window >= 1 and self.ncc_window % 2 == 1, "ncc_window must be odd"),
            (self.coarse_ncc_window >= 1 and self.coarse_ncc_window % 2 == 1,
             "coarse_ncc_window must be odd"),
            (self.lattice_mm > 0 and self.fine_lattice_mm > 0,
             "lattice_mm and fine_lattice_mm must be > 0"),
            (self.coarse_blur >= 0 and self.fine_blur >= 0 and self.crop_margin_mm >= 0,
             "coarse_blur, fine_blur and crop_margin_mm must be >= 0"),
            (0 < self.fine_batch_fraction <= 1, "fine_batch_fraction must be in (0, 1]"),
            (self.hidden >= 1 and self.fine_hidden >= 1 and self.layers >= 1,
             "hidden, fine_hidden and layers must be >= 1"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}"),
            (self.ode_steps >= 1, "ode_steps must be >= 1"),
            (self.fourier_features >= 1, "fourier_features must be >= 1"),
            (self.fourier_sigma > 0 and self.fine_fourier_sigma > 0,
             "fourier_sigma and fine_fourier_sigma must be > 0"),
            (self.omega0 > 0 and self.omega0_hidden > 0, "omega0 and omega0_hidden must be > 0"),
            (self.output_scale > 0, "output_scale must be > 0"),
            (0 < self.lr_final_ratio <= 1, "lr_final_ratio must be in (0, 1]"),
            (self.plateau_patience >= 0 and self.plateau_tolerance >= 0,
             "plateau_patience and plateau_tolerance must be >= 0"),
            (self.random_points >= 1, "random_points must be >= 1"),
            (min(self.folding_weight, self.volume_weight, self.smoothness_weight,
                 self.refine_smoothness_weight) >= 0,
             "folding_weight, volume_weight, smoothness_weight and refine_smoothness_weight "
             "must be >= 0"),
            (self.ode_method in ODE_METHODS, f"ode_method must be one of {ODE_METHODS}"),
        ]
        for ok, problem in checks:
            if not ok:
                raise NirInputError(source, problem)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def preset_values(name: str, source: str | Path | None = None) -> dict[str, Any]:
    """The parameters preset ``name`` changes from the defaults; NirInputError if unknown."""
    if name not in PRESETS:
        raise NirInputError(source, f"unknown preset {name!r}; choose one of "
                                    f"{', '.join(PRESETS)}")
    return dict(PRESETS[name])


def load_params(path: str | Path | None = None, preset: str | None = None,
                **overrides: Any) -> RegistrationParams:
    """Defaults, updated by a preset, by a YAML file, then by non-None ``overrides``; validated.

    ``preset`` (or a ``preset:`` key of the YAML; the argument wins) names an entry of
    :data:`PRESETS`; the YAML's own values and ``overrides`` still win over it.
    """
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
    named = values.pop("preset", None)
    source = path
    if preset is not None:
        named, source = preset, "--preset"
    if named is not None:
        values = {**preset_values(str(named), source), **values}
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
