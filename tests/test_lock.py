"""The reproducible environment: requirements.lock, environment.yml, `make setup LOCKED=1`, and
the software versions the workflow reports.

Everything here is a dry check (no installation): the lock must pin every package the project
imports or declares, and an environment installed from it (`make setup LOCKED=1`) must hold
exactly those versions, so a failure means "run `make lock`" (or `make setup LOCKED=1`).
"""

from __future__ import annotations

import ast
import importlib.util
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
PROJECT = "nir-cohort"
# imported by project code but deliberately not in .venv: nir/baselines/ants_runner.py runs in
# the antspyx environment that `nir ants-env` builds (baselines.ants_venv)
OTHER_ENVIRONMENT = {"ants"}
SNAKEMAKE_IMPORT = re.compile(r"^\s*(?:from\s+([A-Za-z_]\w*)\S*\s+import|import\s+([A-Za-z_]\w*))",
                              re.MULTILINE)


def read_lock() -> tuple[dict[str, str], list[str]]:
    """The pins of requirements.lock (canonical name -> version) and its comment lines."""
    pins: dict[str, str] = {}
    comments = []
    for line in LOCK.read_text().splitlines():
        if line.startswith("#"):
            comments.append(line)
        elif line.strip():
            match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^=\s;]+)", line.strip())
            assert match, f"not an exact pin: {line!r}"
            name = canonicalize_name(match.group(1))
            assert name not in pins, f"{name} pinned twice"
            pins[name] = match.group(2)
    return pins, comments


def top_level_imports() -> dict[str, set[str]]:
    """Top-level module -> files of the project that import it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    python = [p for folder in ("nir", "workflow", "tests", "benchmarks")
              for p in (ROOT / folder).rglob("*.py")]
    for path in python:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    snakefiles = [ROOT / "workflow" / "Snakefile", *(ROOT / "workflow" / "rules").glob("*.smk")]
    for path in snakefiles:
        for match in SNAKEMAKE_IMPORT.finditer(path.read_text()):
            name = match.group(1) or match.group(2)
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def used_distributions() -> dict[str, str]:
    """Distribution -> why: every one the project imports, and every one it declares."""
    local = {p.stem for p in ROOT.iterdir()} | {"nir", "tests"}
    providers = metadata.packages_distributions()
    used: dict[str, str] = {}
    unresolved = set()
    for module, files in sorted(top_level_imports().items()):
        if module in sys.stdlib_module_names or module in OTHER_ENVIRONMENT:
            continue
        if module not in providers:
            if module not in local:
                unresolved.add(module)
            continue
        for dist in providers[module]:
            if canonicalize_name(dist) != PROJECT:
                used.setdefault(dist, f"imported as {module} by {sorted(files)[0]}")
    assert not unresolved, f"imported but provided by no installed distribution: {unresolved}"
    for text in metadata.requires(PROJECT) or []:
        used.setdefault(Requirement(text).name, f"required by {PROJECT}: {text}")
    return used


def test_lock_holds_only_exact_pins_and_torch_2_13() -> None:
    pins, comments = read_lock()
    assert pins["torch"] == "2.13.0"  # the build tag (+cpu) is dropped: any build satisfies it
    assert any("make lock" in line for line in comments)  # says how it was produced
    assert PROJECT not in pins  # the project itself is installed editable, not from the lock


def test_lock_pins_every_package_the_project_uses() -> None:
    pins, _ = read_lock()
    used = used_distributions()
    assert {"torch", "numpy", "snakemake", "pytest", "packaging"} <= set(used)
    missing = sorted(dist for dist in used if canonicalize_name(dist) not in pins)
    assert not missing, f"not in requirements.lock, run `make lock`: {missing}"


def test_a_locked_environment_has_the_locked_versions() -> None:
    if not (Path(sys.prefix) / ".locked").exists():
        pytest.skip("this environment was not installed from the lock (make setup LOCKED=1): "
                    "an unlocked install may hold newer releases")
    pins, _ = read_lock()
    used = used_distributions()
    stale = []
    for dist, why in sorted(used.items()):
        installed = metadata.version(dist)
        pinned = pins.get(canonicalize_name(dist))
        # pip's own comparison: ==2.13.0 is satisfied by the installed 2.13.0+cpu
        if pinned is None or not SpecifierSet(f"=={pinned}").contains(installed,
                                                                       prereleases=True):
            stale.append(f"{dist}: installed {installed}, lock {pinned} ({why})")
    assert not stale, "requirements.lock is stale, run `make lock`:\n" + "\n".join(stale)


def test_environment_yml_states_the_locked_versions() -> None:
    pins, comments = read_lock()
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    stated: dict[str, str] = {}
    editable = []
    for entry in environment["dependencies"]:
        if isinstance(entry, dict):  # the pip: section
            for line in entry["pip"]:
                if line.startswith("-e"):
                    editable.append(line)
                    continue
                name, _, version = line.partition("==")
                assert version, f"environment.yml: {line!r} is not pinned"
                stated[canonicalize_name(name)] = version
        else:
            name, _, version = entry.partition("=")
            assert version, f"environment.yml: {entry!r} is not pinned"
            stated[canonicalize_name(name)] = version
    python = re.search(r"Python (\d+\.\d+\.\d+)", "\n".join(comments))
    assert python, "the lock's header names no Python version"
    assert stated.pop("python") == python.group(1)
    assert stated, "environment.yml lists no package"
    disagree = {name: (version, pins.get(name)) for name, version in stated.items()
                if pins.get(name) != version}
    assert not disagree, f"environment.yml vs requirements.lock: {disagree}"
    declared = {canonicalize_name(Requirement(t).name) for t in metadata.requires(PROJECT) or []
                if Requirement(t).marker is None}
    assert declared <= set(stated), f"not in environment.yml: {declared - set(stated)}"
    assert editable == ["-e .[workflow]"]


def _make_dry_run(*args: str) -> list[str]:
    done = subprocess.run(["make", "-n", "-B", "-C", str(ROOT), *args], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_make_setup_locked_installs_torch_first_then_the_lock() -> None:
    if subprocess.run(["make", "--version"], capture_output=True).returncode != 0:
        pytest.skip("make not installed")
    locked = _make_dry_run("setup", "LOCKED=1")  # -n: prints the commands, runs none
    torch = next(i for i, line in enumerate(locked) if "pip install" in line
                 and "torch==2.13.0" in line)
    lock = next(i for i, line in enumerate(locked) if "pip install" in line
                and "-r requirements.lock" in line)
    assert torch < lock, locked
    assert not any("requirements.lock" in line for line in _make_dry_run("setup"))
    assert any("pip freeze --all --exclude-editable" in line and "requirements.lock" in line
               for line in _make_dry_run("lock"))


def _versions_script():
    """workflow/scripts/versions.py as a module (its Snakemake part runs only as __main__)."""
    spec = importlib.util.spec_from_file_location(
        "nir_workflow_versions", ROOT / "workflow" / "scripts" / "versions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_versions_are_those_of_the_running_environment(tmp_path: Path) -> None:
    script = _versions_script()
    rows = script.version_rows()
    versions = {name: version for name, version, _ in rows}
    assert versions["python"] == platform.python_version()
    for dist in ("nir-cohort", "torch", "numpy", "nibabel", "snakemake", "deepbet"):
        assert versions[dist] == metadata.version(dist), dist
    assert "pytest" not in versions  # a development tool, not used by a run
    assert dict((name, note) for name, _, note in rows)["torch"] in ("CPU", f"CUDA {_cuda()}")
    script.write_tsv(rows, tmp_path / "versions.tsv")
    script.write_html(rows, tmp_path / "versions.html")
    lines = (tmp_path / "versions.tsv").read_text().splitlines()
    assert lines[0] == "package\tversion\tnote" and len(lines) == len(rows) + 1
    page = (tmp_path / "versions.html").read_text()
    assert f"<td>torch</td><td>{metadata.version('torch')}</td>" in page


def _cuda() -> str | None:
    import torch

    return torch.version.cuda
