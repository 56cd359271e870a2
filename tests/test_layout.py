"""nlpcli/layout.py is the one place that names the files of a run folder: no other module spells them, and
the names of transformers' files are the ones transformers uses."""

from __future__ import annotations

import ast
from pathlib import Path

from nlpcli import layout

PACKAGE = Path(__file__).resolve().parent.parent / "nlpcli"
# names that also mean something else: "tensorboard" is also the --report-to value and the package, "runs" a
# key of `nlpcli report --json`
OTHER_MEANINGS = {layout.TENSORBOARD, layout.DEFAULT_ROOT}


def layout_names() -> set[str]:
    names = {value for key, value in vars(layout).items() if isinstance(value, str) and not key.startswith("__")}
    return (names | set(layout.NOT_PUSHED)) - OTHER_MEANINGS


def docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes (prose may name files)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def test_no_module_but_layout_spells_a_run_folder_name():
    names = layout_names()
    spelled = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "layout.py" and path.parent == PACKAGE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                text = node.value.strip(".").removesuffix("*")
                if node.value in names or (text and any(text == name.strip(".") for name in names)):
                    spelled.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.value!r}")
    assert not spelled, "\n".join(spelled)


def test_transformers_file_names_are_transformers_own():
    from transformers.tokenization_utils_fast import TOKENIZER_FILE
    from transformers.trainer import TRAINER_STATE_NAME
    from transformers.utils import CONFIG_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_NAME

    assert (layout.MODEL_CONFIG, layout.SAFE_WEIGHTS, layout.WEIGHTS) == (CONFIG_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_NAME)
    assert (layout.TRAINER_STATE, layout.TOKENIZER_FILE) == (TRAINER_STATE_NAME, TOKENIZER_FILE)


def test_checkpoint_names():
    assert layout.checkpoint_name(12) == "checkpoint-12" and layout.checkpoint_step("checkpoint-12") == 12
    assert layout.checkpoint_step("checkpoint-x") is None and layout.checkpoint_step("last-checkpoint") is None
    assert layout.STAGING.startswith(".")  # hidden: --push-to-hub leaves it out (NOT_PUSHED)
    assert Path(layout.STAGING).match(".*") and ".*" in layout.NOT_PUSHED
    assert layout.BEFORE_TRAINING == {"eval_predictions.jsonl": "eval_predictions_before.jsonl"}
