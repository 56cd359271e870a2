"""Every dependency pyproject.toml declares is imported by nlpcli: none is installed for nothing."""

from __future__ import annotations

import ast
import re

from conftest import REPO

IMPORT_NAMES = {"pyyaml": "yaml"}  # distributions whose import name is not their own name


def imported_modules() -> set[str]:
    """Top-level names of every module an nlpcli source file imports (at module level or inside functions)."""
    found: set[str] = set()
    for path in (REPO / "nlpcli").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found


def test_every_declared_dependency_is_imported():
    block = re.search(r"^dependencies = \[(.*?)^\]", (REPO / "pyproject.toml").read_text(), re.S | re.M)[1]
    declared = re.findall(r'"([^"]+)"', block)
    assert "torch>=2.4" in declared
    names = [re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0].strip().lower() for requirement in declared]
    imported = imported_modules()
    unused = [name for name in names if IMPORT_NAMES.get(name, name.replace("-", "_")) not in imported]
    assert not unused, f"declared in pyproject.toml but imported nowhere in nlpcli: {unused}"
    assert "evaluate" not in names  # evaluate.load fails offline; the metrics call their libraries directly
