"""Choose the torch device that a registration runs on."""

from __future__ import annotations

import re

import torch

from nir.errors import NirInputError

DEVICE_PATTERN = r"auto|cpu|cuda(?::(\d+))?"  # the config schema's device pattern matches this
_DEVICE = re.compile(DEVICE_PATTERN)


def resolve_device(name: str) -> torch.device:
    """Turn ``auto|cpu|cuda|cuda:N`` into a torch device.

    ``auto`` picks CUDA when ``torch.cuda.is_available()`` (which honours
    ``CUDA_VISIBLE_DEVICES``, as set by SLURM's ``--gpus``), else the CPU. Asking for CUDA where
    there is none, or for a GPU index past the last visible one, raises NirInputError.
    """
    match = _DEVICE.fullmatch(name.strip().lower())
    if match is None:
        raise NirInputError("--device", f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    kind = match.group(0)
    if kind == "cpu":
        return torch.device("cpu")
    cuda = torch.cuda.is_available()
    if kind == "auto":
        return torch.device("cuda") if cuda else torch.device("cpu")
    if not cuda:
        raise NirInputError("--device", f"{name} requested but CUDA is not available here "
                            "(no GPU visible, or a CPU-only torch); use --device cpu or auto")
    if match.group(1) is None:
        return torch.device("cuda")
    index = int(match.group(1))
    count = torch.cuda.device_count()
    if index >= count:
        raise NirInputError("--device", f"{name} requested but only {count} CUDA device(s) "
                            "are visible (CUDA_VISIBLE_DEVICES renumbers them from 0)")
    return torch.device("cuda", index)
