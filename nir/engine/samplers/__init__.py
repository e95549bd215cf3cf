"""Coordinate samplers, one per module of this package: where the similarity is measured at
each iteration.

A sampler is one class in one module named after it (``downsize.py`` is the ``downsize``
sampler), following :class:`~nir.engine.samplers._base.Sampler`: a ``strided`` flag, a
``from_setup`` class method and ``sample()`` returning a
:class:`~nir.engine.samplers._base.Batch`.  The names are found from the module files without
importing them (so the parameter enum, :data:`nir.engine.params.SAMPLERS`, costs no torch
import); :func:`sampler_class` imports one when a phase needs it.  A new sampler is a module
here plus its test; ``tests/test_samplers.py`` checks every registered one and that the
workflow schema lists them.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache


@cache
def sampler_names() -> tuple[str, ...]:
    """The registered samplers: the public modules of this package, sorted."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)
                        if not m.name.startswith("_")))


def sampler_class(name: str) -> type:
    """The sampler class registered as ``name`` (the one class its module defines with
    ``from_setup``); KeyError if there is none."""
    if name not in sampler_names():
        raise KeyError(f"no sampler {name!r}; registered: {', '.join(sampler_names())}")
    module = importlib.import_module(f"{__name__}.{name}")
    classes = [v for v in vars(module).values() if isinstance(v, type)
               and v.__module__ == module.__name__ and hasattr(v, "from_setup")]
    if len(classes) != 1:
        raise KeyError(f"sampler module {module.__name__} must define exactly one sampler "
                       f"class, found {len(classes)}")
    return classes[0]
