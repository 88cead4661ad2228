"""Lower layers never import upper ones: inference/ and evaluation/ stay below the API, the engine
and the commands (they are used by them)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "msdetr"
UPPER = ("msdetr.api", "msdetr.engine", "msdetr.commands", "msdetr.cli")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


@pytest.mark.parametrize("layer", ["inference", "evaluation", "modeling", "losses", "supervision", "ops"])
def test_lower_layers_do_not_import_upper_ones(layer):
    offenders = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        for name in _imports(path)
        if name.startswith(UPPER)
    ]
    assert offenders == []
