"""The layers point one way: io -> ica/dualreg -> netmats -> glm -> posthoc -> viz -> report -> cli."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "icanets"
LAYERS = ["io", "qc", "ica", "dualreg", "netmats", "glm", "predict", "posthoc", "viz", "report", "pipeline", "runner", "cli"]
# Foundation modules anything may use.
BASE = {"errors", "_version", "_defaults", "_format", "_blocked", "expr", "config", "study", "parallel", "simulate"}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "icanets" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name


@pytest.mark.parametrize("layer", LAYERS)
def test_no_upward_imports(layer):
    files = sorted((PACKAGE / layer).rglob("*.py")) if (PACKAGE / layer).is_dir() else [PACKAGE / f"{layer}.py"]
    rank = LAYERS.index(layer)
    for path in files:
        for module in _imports(path):
            target = _layer(module)
            if target is None or target in BASE or target == layer:
                continue
            assert target in LAYERS, f"{path.name} imports unknown part icanets.{target}"
            assert LAYERS.index(target) <= rank, f"{path.relative_to(PACKAGE)} imports {module} (a later layer)"


def test_statistics_never_import_plotting():
    for layer in ("netmats", "glm", "predict", "posthoc", "ica"):
        for path in (PACKAGE / layer).rglob("*.py"):
            assert not any(m.startswith(("matplotlib", "icanets.viz", "icanets.report")) for m in _imports(path)), path
