"""Provenance for outputs: package versions, peak memory and JSON writing."""

from __future__ import annotations

import json
import platform
import resource
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from nir.errors import NirInputError
from nir.spatial.io import atomic_write

PACKAGES = ("nir-cohort", "torch", "torchdiffeq", "nibabel", "numpy", "scipy")


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Versions of python and the packages that decide a result."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def peak_device_mb(device: torch.device) -> float | None:
    """Peak CUDA memory allocated by torch, in MB (None on the CPU)."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def write_json(data: dict[str, Any], path: str | Path) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return Path(path)


def read_json_object(path: str | Path) -> dict[str, Any]:
    """A JSON object from ``path``; NirInputError naming the file if missing or not one."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise NirInputError(path, "file does not exist") from exc
    except (OSError, ValueError) as exc:
        raise NirInputError(path, f"unreadable as JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise NirInputError(path, "expected a JSON object")
    return data
