"""`nlpcli inspect`: build what a run of the same command line would build, train nothing, and check it.

The build is the run's own: the same option checks (`run.check_options`), the data read by `splits.read` and
the model, tokenizer and features made by `run.assemble`. What differs: a preset's fitted tokenizer goes to a
temporary folder (removed at the end) instead of the run folder, no output folder is made, and nothing is
written (but datasets' own cache of the features, as a run writes it, which the next run reuses). Then the
first training batch is collated as both loops collate it (`context.model_inputs` -> the task's collator) and
the checks of `runner/checks.py` and `runner/forward_check.py` look at the data, one example, the targets, the
batch, the forward signature, one forward pass and the model.

Single-process: it inspects a run as its main process would see it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from nlpcli import layout
from nlpcli.config import RunConfig
from nlpcli.console import collected_warnings
from nlpcli.runner import checks, length_split, splits
from nlpcli.runner.checks import WARNING, Check
from nlpcli.runner.context import dropped_columns, model_inputs
from nlpcli.runner.forward_check import forward_check
from nlpcli.runner.run import Built, assemble, check_options, quiet_libraries
from nlpcli.runner.threads import apply_threads
from nlpcli.sources import data
from nlpcli.tasks import get_task
from nlpcli.tasks.base import Task

TEMPORARY_PREFIX = "nlpcli-inspect-"


@dataclass
class Inspection:
    """What `nlpcli inspect` found: one verdict per check, the worst of them the report's status."""

    task: str
    model: str
    split: str  # the split the batch and the example come from: train, or validation with --eval-only
    checks: list[Check]

    @property
    def status(self) -> str:
        return checks.worst(self.checks)

    def as_json(self) -> dict[str, Any]:
        return {"task": self.task, "model": self.model, "split": self.split, "status": self.status,
                "checks": [check.as_json() for check in self.checks]}


def inspect_task(task_name: str, cfg: RunConfig) -> Inspection:
    """Build a run's data, model and first batch for `cfg`, and check them."""
    import torch
    from accelerate import PartialState
    from transformers import set_seed

    quiet_libraries()
    state = PartialState(cpu=not torch.cuda.is_available())
    task = get_task(task_name)
    set_seed(cfg.seed)
    check_options(task, cfg)
    apply_threads(cfg.threads)  # as a run does: the forward pass on as many threads as the run would use
    with collected_warnings() as warnings, tempfile.TemporaryDirectory(prefix=TEMPORARY_PREFIX) as folder:
        run_data = splits.read(task, cfg)
        built = assemble(task, cfg, state, run_data, Path(folder) / layout.PRESET_TOKENIZER)
        found = check_built(task, cfg, run_data, built)
    if warnings:
        found.append(Check("warnings", WARNING, f"{len(warnings)} warning(s) while reading and building",
                           notes=list(warnings)))
    split = "train" if built.prepared.train is not None else "validation"
    return Inspection(task_name, cfg.model, split, found)


def first_batch(task: Task, cfg: RunConfig, built: Built, features: Any, batch_size: int) -> tuple[dict, list[str]]:
    """(the first batch of `features` as the loops collate it, the feature columns the loops leave out)."""
    dropped = dropped_columns(features, built.model, task)
    inputs = model_inputs(features, built.model, task)
    rows = list(islice(iter(inputs), batch_size)) if data.is_streamed(inputs) else [
        inputs[i] for i in range(min(batch_size, len(inputs)))]
    collator = task.collator(built.tokenizer, built.model, cfg)
    if hasattr(collator, "set_epoch"):  # both loops tell such a collator that epoch 0 starts
        collator.set_epoch(0)
    return collator(rows), dropped


def check_built(task: Task, cfg: RunConfig, run_data: splits.RunData, built: Built) -> list[Check]:
    """Every check, in the order the report lists them."""
    prepared = built.prepared
    training = prepared.train is not None
    split, features = ("train", prepared.train) if training else ("validation", prepared.eval)
    batch, dropped = first_batch(task, cfg, built, features,
                                 cfg.batch_size if training else cfg.per_device_eval_batch_size)
    return [
        checks.data_check(task, cfg, run_data, prepared),
        checks.example_check(task, batch, run_data.raw[split], built.tokenizer, cfg, built.setup, split),
        checks.targets_check(task, features, cfg, split),
        checks.batch_check(batch, built.tokenizer, dropped, length_split.for_run(
            cfg, None, built.model, task.shifts_labels, prepared.training_loss is not None) if training else None),
        checks.signature_check(batch, built.model),
        forward_check(task, built.model, batch, prepared),
        checks.model_check(built.model, built.tokenizer, built.setup, prepared, batch),
    ]
