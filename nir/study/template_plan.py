"""The rounds of a study-template build: where each file goes, what each round's registrations
write and which of their outputs are kept. ``nir template`` (one process) and the workflow's
template rules (one job per subject and round) both follow this plan.

Round ``k`` registers every subject onto the template ``T_k``; rounds ``0 … K-1`` are followed
by a shape update, round ``K`` (the last) gives the template-space outputs. A registration
writes ``KINDS``, and in velocity mode the last round also the inverse warp (nothing reads an
earlier round's). The shape update and a round's measures read the warps (and warped labels),
so an earlier round's warps and det J maps are deleted once they are read unless
``keep_rounds``; the last round's outputs, and an earlier round's warped images and labels,
are kept as ``keep`` says (the workflow's ``outputs`` section).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nir.errors import NirInputError
from nir.study.methods import Method

INITIAL_CHOICES = ("mean", "mni152")
KINDS = ("warped", "warped_labels", "warp", "jacobian", "summary")
ROUND_ONLY = ("warp", "jacobian")  # of rounds before the last: kept only with keep_rounds
KEEP_ALL = ("warped", "warped_labels", "warp", "jacobian")


@dataclass(frozen=True)
class TemplatePlan:
    """Where a template build writes, how many shape updates, and what each round keeps."""

    root: str
    iterations: int
    velocity: bool  # velocity mode: the last round writes inverse warps too
    keep: tuple[str, ...] = KEEP_ALL  # the kinds the last round keeps (summary: always)
    keep_rounds: bool = False  # keep the warps and det J maps of the rounds before the last
    warp_dtype: str = "float32"
    method: str | None = None  # the workflow's methods entry

    @classmethod
    def from_config(cls, config: Mapping, methods: Mapping[str, Method],
                    subjects: Sequence[str], results: str) -> TemplatePlan:
        """Check ``config['template']`` against the methods and subjects; NirInputError if bad.
        ``config['outputs']`` says what is kept and how warps are stored."""
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
        outputs = config["outputs"]
        return cls(f"{results}/template", int(section["iterations"]),
                   method.nir_params().mode == "velocity",
                   keep=tuple(kind for kind in KEEP_ALL if outputs[kind]),
                   keep_rounds=bool(section["keep_rounds"]), warp_dtype=outputs["warp_dtype"],
                   method=name)

    def is_final(self, iteration: int | str) -> bool:
        """True for round ``K``, the one that gives the template-space outputs."""
        return int(iteration) == self.iterations

    def inverse(self, final: bool) -> bool:
        """Whether the registrations of a round write inverse warps (the last, velocity mode)."""
        return final and self.velocity

    def kinds(self, final: bool) -> tuple[str, ...]:
        """The outputs of every registration of the last round (``final``) or an earlier one."""
        return (*KINDS, "inverse_warp") if self.inverse(final) else KINDS

    def kept(self, kind: str, final: bool) -> bool:
        """Whether output ``kind`` of a registration in the last (``final``) or an earlier
        round stays on disk once the steps that read it are done."""
        if kind == "summary":
            return True
        if not final and kind in ROUND_ONLY:
            return self.keep_rounds
        return ("warp" if kind == "inverse_warp" else kind) in self.keep

    def dropped(self, iteration: int, subject: str) -> list[str]:
        """The outputs of ``subject``'s registration in round ``iteration`` that are not kept."""
        final = self.is_final(iteration)
        return [self.registered(kind, iteration, subject) for kind in self.kinds(final)
                if not self.kept(kind, final)]

    def image(self, iteration: int | str) -> str:
        """The template of ``iteration`` (an int, or a wildcard string)."""
        return f"{self.root}/iter-{_folder(iteration)}/template.nii.gz"

    def round_record(self, iteration: int | str) -> str:
        """The JSON of round ``iteration``'s measures."""
        return f"{self.root}/iter-{_folder(iteration)}/round.json"

    def update_record(self, iteration: int | str) -> str:
        """The JSON of the shape update that made template ``iteration`` (1 … K)."""
        return f"{self.root}/iter-{_folder(iteration)}/update.json"

    def qc(self, name: str) -> str:
        """A file of the template QC (nir.study.template_qc): ``template_qc.csv``/``.md`` or a
        subject's panel ``ID.png``."""
        return f"{self.root}/qc/{name}"

    def prefix(self, iteration: int | str = "{iteration}", subject: str = "{subject}") -> str:
        """The ``nir register --out`` prefix of one subject in one round."""
        return f"{self.root}/iter-{_folder(iteration)}/register/{subject}/{subject}"

    def registered(self, kind: str, iteration: int | str = "{iteration}",
                   subject: str = "{subject}") -> str:
        """One output of ``nir register`` for ``subject`` in round ``iteration``."""
        suffix = "json" if kind == "summary" else "nii.gz"
        return f"{self.prefix(iteration, subject)}_{kind}.{suffix}"

    def register_flags(self, final: bool) -> str:
        """The ``nir register`` options of a round's registrations (what ``nir template``
        passes to :func:`nir.engine.pair.register_files`)."""
        inverse = " --inverse" if self.inverse(final) else ""
        return f"--warp-dtype {self.warp_dtype}{inverse}"

    def rounds(self, final: bool) -> str:
        """Wildcard constraint of ``iteration``: the last round, or the earlier ones."""
        if final:
            return f"{self.iterations:02d}"
        return "|".join(f"{k:02d}" for k in range(self.iterations))

    @staticmethod
    def previous(iteration: str) -> int:
        """The iteration before the wildcard value ``iteration``."""
        return int(iteration) - 1


def _folder(iteration: int | str) -> str:
    return f"{iteration:02d}" if isinstance(iteration, int) else iteration
