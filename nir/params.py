"""Every registration parameter, its default and its unit, in one place.

A YAML file passed with ``--config`` may set any field below; command-line flags win over it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from nir.errors import NirInputError

MODES = ("displacement", "velocity")
SAMPLERS = ("random", "downsize", "minipatch", "hybrid")


@dataclass
class RegistrationParams:
    """Parameters of one NIR registration (defaults tuned on real 1 mm brain pairs, 2 CPU cores).

    Field: ``mode`` displacement|velocity; ``fourier_features`` m random frequencies with std
    ``fourier_sigma`` (cycles per field unit = half the largest image extent); SIREN of
    ``hidden`` x ``layers`` (the hybrid residual NF2 uses ``fine_fourier_sigma``), with frequency factors ``omega0`` (first) and ``omega0_hidden``;
    the network output times ``output_scale`` is the displacement (or velocity) in field units.
    Velocity mode integrates with torchdiffeq ``ode_method`` in ``ode_steps`` fixed steps.
    Sampling: ``sampler`` random|downsize|minipatch|hybrid; ``iterations`` (phase 2 when hybrid),
    ``coarse_iterations`` (hybrid phase 1 with the downsize sampler); ``downsize_stride`` in
    voxels (images are Gaussian-blurred to that scale first); ``patches`` cubes of
    ``patch_size`` voxels for minipatch; ``random_points`` for random.
    Loss: local NCC over ``ncc_window``-voxel cubes (on the sampled grid), plus
    ``folding_weight`` x mean ReLU(-det J) plus ``volume_weight`` x mean |1 - det J|.
    Optimiser: Adam at ``lr``, decayed exponentially to ``lr * lr_final_ratio``; stops early
    when the loss improves by less than ``plateau_tolerance`` over ``plateau_patience``
    iterations (0 disables). Inference: ``chunk_points`` points per batch, bounded memory; the
    field is evaluated every ``inference_stride`` voxels and its displacement upsampled
    trilinearly (1 = every voxel);
    labels warped with ``label_interpolation`` onehot|nearest.
    """

    mode: str = "displacement"
    sampler: str = "hybrid"
    iterations: int = 200
    coarse_iterations: int = 200
    lr: float = 3e-3
    lr_final_ratio: float = 0.1
    fourier_features: int = 64
    fourier_sigma: float = 1.0
    fine_fourier_sigma: float = 4.0
    hidden: int = 64
    layers: int = 3
    omega0: float = 1.0
    omega0_hidden: float = 1.0
    output_scale: float = 0.1
    ode_method: str = "rk4"
    ode_steps: int = 4
    downsize_stride: int = 4
    patches: int = 8
    patch_size: int = 16
    random_points: int = 8192
    ncc_window: int = 5
    folding_weight: float = 1.0
    volume_weight: float = 0.0
    plateau_patience: int = 0
    plateau_tolerance: float = 1e-4
    chunk_points: int = 262144
    inference_stride: int = 2
    label_interpolation: str = "onehot"

    def validate(self, source: str | None = None) -> RegistrationParams:
        """Check choices and ranges; raise NirInputError naming ``source`` on a bad value."""
        checks = [
            (self.mode in MODES, f"mode must be one of {MODES}, got {self.mode!r}"),
            (self.sampler in SAMPLERS, f"sampler must be one of {SAMPLERS}, got {self.sampler!r}"),
            (self.label_interpolation in ("onehot", "nearest"),
             "label_interpolation must be onehot or nearest"),
            (self.iterations >= 0 and self.coarse_iterations >= 0, "iterations must be >= 0"),
            (self.lr > 0, "lr must be > 0"),
            (self.downsize_stride >= 1, "downsize_stride must be >= 1"),
            (self.patch_size >= 2 and self.patches >= 1, "patch_size must be >= 2, patches >= 1"),
            (self.ncc_window >= 1 and self.ncc_window % 2 == 1, "ncc_window must be odd"),
            (self.ode_steps >= 1, "ode_steps must be >= 1"),
            (self.chunk_points >= 1024, "chunk_points must be >= 1024"),
            (self.inference_stride >= 1, "inference_stride must be >= 1"),
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
        unknown = sorted(set(loaded) - set(known))
        if unknown:
            raise NirInputError(path, f"unknown parameter(s) {unknown}; known: {sorted(known)}")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
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
