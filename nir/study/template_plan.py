"""The template section of a workflow config, checked at config time, and its output paths."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nir.errors import NirInputError
from nir.study.methods import Method

INITIAL_CHOICES = ("mean", "mni152")
KINDS = ("warped", "warped_labels", "warp", "jacobian", "summary")


@dataclass(frozen=True)
class TemplatePlan:
    """Which method registers, how many iterations, and where each file goes."""

    root: str
    method: str
    iterations: int
    inverse: bool  # velocity mode: the final round writes inverse warps too

    @classmethod
    def from_config(cls, config: Mapping, methods: Mapping[str, Method],
                    subjects: Sequence[str], results: str) -> TemplatePlan:
        """Check ``config['template']`` against the methods and subjects; NirInputError if bad."""
        section = config["template"]
        name = section.get("method") or next(iter(methods))
        method = methods.get(name)
        if method is None or method.engine != "nir":
            nir = [m for m, spec in methods.items() if spec.engine == "nir"]
            raise NirInputError("config: template.method", f"{name!r} is not an engine-nir "
                                                           f"method (have: {', '.join(nir)})")
        initial = section["initial"]
        if initial not in INITIAL_CHOICES and initial not in subjects:
            raise NirInputError("config: template.initial", f"{initial!r} is neither "
                                f"{' nor '.join(INITIAL_CHOICES)} nor a subject of the cohort")
        inverse = method.nir_params().mode == "velocity"
        return cls(f"{results}/template", name, int(section["iterations"]), inverse)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The outputs of every template registration."""
        return (*KINDS, "inverse_warp") if self.inverse else KINDS

    def image(self, iteration: int | str) -> str:
        """The template of ``iteration`` (an int, or a wildcard string)."""
        folder = f"{iteration:02d}" if isinstance(iteration, int) else iteration
        return f"{self.root}/iter-{folder}/template.nii.gz"

    def prefix(self, iteration: int | str = "{iteration}", subject: str = "{subject}") -> str:
        """The ``nir register --out`` prefix of one subject in one round."""
        folder = f"{iteration:02d}" if isinstance(iteration, int) else iteration
        return f"{self.root}/iter-{folder}/register/{subject}/{subject}"

    def registered(self, kind: str, iteration: int | str = "{iteration}",
                   subject: str = "{subject}") -> str:
        """One output of ``nir register`` for ``subject`` in round ``iteration``."""
        suffix = "json" if kind == "summary" else "nii.gz"
        return f"{self.prefix(iteration, subject)}_{kind}.{suffix}"

    @staticmethod
    def previous(iteration: str) -> int:
        """The iteration before the wildcard value ``iteration``."""
        return int(iteration) - 1
