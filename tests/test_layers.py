"""The package's layers: a module imports only from its own layer or those below it, so that
the registration engine can be used (and changed) without the evaluation, the study workflow or
the statistics, and data flows one way: spatial -> engine -> evaluation -> study -> stats."""

from __future__ import annotations

import ast
from pathlib import Path

NIR = Path(__file__).resolve().parents[1] / "nir"
# Lower rank = lower layer.  Modules at the package root sit by what they import.
RANKS = {
    "errors": 0, "device": 0, "allocator": 0, "termination": 0, "markdown": 0, "__init__": 0,
    "spatial": 1, "summary": 2,
    "preprocess": 3, "engine": 3,
    "evaluation": 4, "study": 5, "stats": 6, "baselines": 7,
    "commands": 8, "cli": 9, "__main__": 10,
}


def _layer(module: str) -> str:
    """The layer of ``nir.a.b`` (``a``) or of a root module ``nir.a``."""
    return module.split(".")[1] if "." in module else "__init__"


def _imports(path: Path) -> set[str]:
    """Every ``nir.*`` module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {name for name in names if name == "nir" or name.startswith("nir.")}
    return found


def test_every_module_has_a_layer() -> None:
    layers = {(p.relative_to(NIR).parts[0].removesuffix(".py")) for p in NIR.rglob("*.py")}
    assert layers <= set(RANKS), f"unranked: {sorted(layers - set(RANKS))}"


def test_no_module_imports_from_a_higher_layer() -> None:
    upward = []
    for path in sorted(NIR.rglob("*.py")):
        own = path.relative_to(NIR).parts[0].removesuffix(".py")
        for module in _imports(path):
            target = _layer(module)
            if RANKS[target] > RANKS[own]:
                upward.append(f"{path.relative_to(NIR.parent)} imports {module}")
    assert not upward, "\n".join(upward)


def test_the_engine_does_not_import_the_evaluation() -> None:
    assert not [p for p in (NIR / "engine").rglob("*.py") if "nir.evaluation" in p.read_text()]
