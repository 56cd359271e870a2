"""The Task contract holds: task objects keep no state between hooks, and docs/architecture.md names every hook."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from nlpcli.tasks.base import Task

ROOT = Path(__file__).resolve().parent.parent
TASKS = ROOT / "nlpcli" / "tasks"


def task_classes() -> list[tuple[Path, ast.ClassDef]]:
    """Every class under nlpcli/tasks that derives from Task, directly or through another one found there."""
    classes = [(path, node) for path in sorted(TASKS.glob("*.py"))
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(node, ast.ClassDef)]
    names = {"Task"}
    while True:
        found = {node.name for _, node in classes
                 if any(isinstance(base, ast.Name) and base.id in names for base in node.bases)}
        if found <= names:
            break
        names |= found
    return [(path, node) for path, node in classes if node.name in names]


def assigned_to_self(target: ast.expr) -> bool:
    """`self.x = ...`, `self.x[k] = ...`, `self.x.y = ...`: the target writes into the object."""
    while isinstance(target, ast.Attribute | ast.Subscript):
        if isinstance(target.value, ast.Name) and target.value.id == "self":
            return True
        target = target.value
    if isinstance(target, ast.Tuple | ast.List):
        return any(assigned_to_self(element) for element in target.elts)
    return False


def self_assignments(cls: ast.ClassDef) -> list[str]:
    found = []
    for method in cls.body:
        if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef) or method.name == "__init__":
            continue
        for node in ast.walk(method):
            targets = (node.targets if isinstance(node, ast.Assign)
                       else [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else [])
            is_setattr = (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr"
                          and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id == "self")
            if is_setattr or any(assigned_to_self(target) for target in targets):
                found.append(f"{cls.name}.{method.name}, line {node.lineno}")
    return found


def test_no_task_assigns_to_self_outside_init():
    classes = task_classes()
    assert {"NerTask", "QaTask", "ClmTask", "MlmTask", "Seq2SeqTask", "TranslateTask", "SummarizeTask"} <= {
        node.name for _, node in classes}
    offenders = [f"{path.name}: {where}" for path, cls in classes for where in self_assignments(cls)]
    assert not offenders, "a task keeps state set by one hook for another:\n" + "\n".join(offenders)


def test_the_checker_sees_assignments_to_self():
    source = ("class T(Task):\n    def __init__(self):\n        self.ok = 1\n"
              "    def setup(self):\n        self.cfg = 1\n        self.facts['x'] = 2\n        a, self.b = 1, 2\n"
              "    def prepare(self):\n        self.n += 1\n        setattr(self, 'y', 3)\n        local = 4\n")
    cls = next(node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ClassDef))
    assert [where.split(",")[0] for where in self_assignments(cls)] == ["T.setup"] * 3 + ["T.prepare"] * 2


def public_hooks() -> list[str]:
    return [name for name, _ in inspect.getmembers(Task, inspect.isfunction) if not name.startswith("_")]


def test_every_public_hook_is_named_in_the_architecture_notes():
    notes = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    hooks = public_hooks()
    assert {"normalize", "setup", "prepare", "prepare_test", "collator", "predict"} <= set(hooks)
    missing = [name for name in hooks if f"`{name}(" not in notes]
    assert not missing, f"docs/architecture.md does not name these Task hooks: {', '.join(missing)}"


def test_padding_collators_pad_to_a_multiple_of_8_on_a_gpu_only(monkeypatch):
    """Tensor cores want multiples of 8; on a CPU every padded position is work, so none is added there."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from nlpcli.tasks import get_task

    backend = Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1, "a": 2}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]")
    rows = [{"input_ids": [2, 2, 2], "attention_mask": [1, 1, 1], "labels": [0, 0, 0]},
            {"input_ids": [2], "attention_mask": [1], "labels": [0]}]
    for on_gpu, length in ((False, 3), (True, 8)):
        monkeypatch.setattr(torch.cuda, "is_available", lambda on_gpu=on_gpu: on_gpu)
        collator = get_task("ner").collator(tokenizer, None, get_task("ner").config_class())
        assert collator(rows)["input_ids"].shape == (2, length)
