"""What the orchestration hands to a training loop (and to the test set's evaluation after it), and the one hook a
caller of the runner may add to a run's evaluations (`EvaluationHook`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlpcli import layout
from nlpcli.config import RunConfig
from nlpcli.files import write_jsonl_atomic
from nlpcli.runner.report import RunReport
from nlpcli.tasks.base import Prepared, Task


@dataclass(frozen=True)
class Stop:
    """An evaluation hook's decision to end training at that evaluation, and why (run.json says it). The run then
    ends as an early-stopped one does: the final evaluation, the model saved, every file written."""

    reason: str


# Called after each evaluation made while training, in every process, with the optimizer step and the evaluation's
# metrics (`eval_*` keys, the same values in every process): None goes on, a `Stop` ends training there.
EvaluationHook = Callable[[int, dict[str, Any]], Stop | None]


@dataclass
class RunContext:
    task: Task
    cfg: RunConfig
    model: Any
    tokenizer: Any
    prepared: Prepared  # the features, and the task's row, score and loss functions
    raw_eval: Any  # the raw examples `eval_features` were made from
    output_dir: Path
    mixed_precision: str  # 'no' | 'fp16' | 'bf16'
    report: RunReport = field(default_factory=RunReport)  # run.json: the loops add what they measured
    train_loss: float | None = None  # mean training loss over the whole run (resumed runs included)
    predictions_file: str = layout.EVAL_PREDICTIONS  # where an evaluation writes its rows (test: test_predictions)
    unlabelled: bool = False  # the evaluated data has placeholder labels: its rows leave the references out
    # called by the main process with each checkpoint folder once it is complete and in place (e.g. --push-to-hub)
    checkpoint_hooks: list[Callable[[Path], None]] = field(default_factory=list)
    evaluation_hooks: list[EvaluationHook] = field(default_factory=list)  # asked after each evaluation in training

    @property
    def train_features(self) -> Any | None:
        return self.prepared.train

    @property
    def eval_features(self) -> Any:
        return self.prepared.eval

    def checkpoint_saved(self, path: Path) -> None:
        for hook in self.checkpoint_hooks:
            hook(path)

    def after_evaluation(self, step: int, metrics: dict[str, Any]) -> Stop | None:
        """Every evaluation hook's decision on the evaluation at `step`: the first `Stop`, else None."""
        decisions = [hook(step, metrics) for hook in self.evaluation_hooks]
        return next((decision for decision in decisions if decision is not None), None)

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        """An evaluation's rows, one per example in data order, to its predictions file (main process only)."""
        if self.unlabelled:
            rows = [{k: v for k, v in row.items() if k not in self.task.reference_keys} for row in rows]
        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_jsonl_atomic(self.output_dir / self.predictions_file, rows)

    def model_inputs(self, features: Any) -> Any:
        return model_inputs(features, self.model, self.task)


def dropped_columns(features: Any, model: Any, task: Task) -> list[str]:
    """The feature columns the loops leave out: those the model's forward() does not take (QA offsets, example
    ids), except those the task's collator consumes itself (`Task.collator_columns`)."""
    accepted = set(inspect.signature(model.forward).parameters) | {"labels"}
    accepted |= set(task.collator_columns)
    return [c for c in features.column_names or [] if c not in accepted]


def model_inputs(features: Any, model: Any, task: Task) -> Any:
    """`features` without the `dropped_columns`: what both loops (and `nlpcli inspect`) hand the collator."""
    return features.remove_columns(dropped_columns(features, model, task))
