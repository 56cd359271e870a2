"""The package's layers (see nlpcli/__init__.py): every import under nlpcli/, function-level ones included,
points down or sideways within a layer, and no module reaches itself through its imports."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "nlpcli"

# top to bottom; a module belongs to the first layer with a prefix that names it or a package above it
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("cli", ("nlpcli.cli", "nlpcli.commands", "nlpcli.__main__", "nlpcli.environment")),
    ("tuning", ("nlpcli.tuning",)),
    ("reporting", ("nlpcli.reporting",)),
    ("runner", ("nlpcli.runner",)),
    ("tasks", ("nlpcli.tasks",)),
    ("sources/config", ("nlpcli.sources", "nlpcli.config", "nlpcli.config_layers", "nlpcli.config_values",
                        "nlpcli.config_args", "nlpcli.config_fields", "nlpcli.run_folder", "nlpcli.predict_io")),
    ("metrics/helpers", ("nlpcli.metrics", "nlpcli.layout", "nlpcli.files", "nlpcli.config_files", "nlpcli.console",
                         "nlpcli.errors", "nlpcli.generation", "nlpcli.help_panels", "nlpcli.suggestions", "nlpcli")),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, known: set[str]) -> set[str]:
    """The nlpcli modules `path` imports, anywhere in it (`from nlpcli.x import y` names module x.y when
    there is one, else x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "nlpcli":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "nlpcli")
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(path, set(found)) - {name} for name, path in found.items()}


def layer_of(module: str) -> int:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes if prefix != "nlpcli"):
            return index
    if module == "nlpcli":
        return len(LAYERS) - 1
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to the order in nlpcli/__init__.py)")


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One path per import circle found by a depth-first search."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                found.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    return found


def test_every_module_is_in_a_layer():
    for name in modules():
        layer_of(name)


def test_imports_point_down_or_sideways():
    upward = [f"{source} ({LAYERS[layer_of(source)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
              for source, targets in graph().items() for target in sorted(targets)
              if layer_of(target) < layer_of(source)]
    assert not upward, "\n".join(upward)


def test_no_import_circle():
    found = cycles(graph())
    assert not found, "\n".join(" -> ".join(cycle) for cycle in found)


def test_layout_imports_nothing_from_nlpcli():
    assert graph()["nlpcli.layout"] == set()


def test_the_checker_finds_circles_and_upward_arrows():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert layer_of("nlpcli.runner.run") < layer_of("nlpcli.tasks.clm") < layer_of("nlpcli.metrics.squad")
    assert layer_of("nlpcli.commands.tune") < layer_of("nlpcli.tuning.loop") < layer_of("nlpcli.reporting.plot")


def test_the_runner_knows_no_tuning():
    """The runner offers a generic evaluation hook; what a study does with it stays in nlpcli.tuning."""
    for name, path in modules().items():
        if name.startswith("nlpcli.runner"):
            text = path.read_text(encoding="utf-8").lower()
            assert "optuna" not in text and "tune" not in text, name
