"""The run report: every fact run.json holds, gathered in one place while the run goes, written once.

Who adds what:
- the runner: what ran where and what training will do (`header`: world size, precision, attention kernel,
  planned steps and epochs, the batch, the logging interval), the sample counts, the --filter counts, the test
  set's size, and an overfit check's verdict (`overfit`, right after the header: such a run folder holds no
  model to use);
- the task, through what its hooks return: `Normalized.data_report` (per split: records kept and dropped)
  and `Normalized.facts` / `Prepared.facts` (e.g. clm's chunking, summarize's sentence splitter);
- the loops: the steps and epochs trained, throughput, the run record's summary and gradient checkpointing
  (`training`), the last evaluation's size and time (`evaluation`) and the last generation evaluation's
  (`generation`).
`as_json` lays them out in run.json's order and adds the wall time, the command and the library versions. The run
header (`training_lines`) and the model card (`sharing`) say what ran from these same facts.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from typing import Any

from nlpcli.runner import sharing

VERSIONED = ("nlpcli", "torch", "transformers", "datasets", "accelerate", "tokenizers")


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


@dataclass
class RunReport:
    """run.json in parts, each filled by whoever knows it (see above); one per run, in its RunContext."""

    header: dict[str, Any] = field(default_factory=dict)  # task, model, loop, eval_only, world size, device, ...
    overfit: dict[str, Any] = field(default_factory=dict)  # --overfit-batch: the check's verdict (runner/overfit.py)
    samples: dict[str, Any] = field(default_factory=dict)  # train examples, train/eval samples, eval features
    filters: list[dict[str, Any]] = field(default_factory=list)  # per --filter: rows seen/kept per split
    data: dict[str, Any] = field(default_factory=dict)  # the task's per-split data report
    generation: dict[str, Any] = field(default_factory=dict)  # the last generation evaluation's size and time
    evaluation: dict[str, Any] = field(default_factory=dict)  # the last evaluation's examples and seconds
    training: dict[str, Any] = field(default_factory=dict)  # what the loop measured and counted
    task: dict[str, Any] = field(default_factory=dict)  # facts only the task knows
    test: dict[str, Any] = field(default_factory=dict)  # test_samples, test_labelled (--test-file / --do-predict)
    resumes: list[dict[str, Any]] = field(default_factory=list)  # every --resume of the run: when, from where, changes

    def as_json(self, started: float) -> dict[str, Any]:
        """run.json's content; `started`: the run's start (`time.time()`), for its wall time."""
        return {
            **self.header,
            **({"overfit": self.overfit} if self.overfit else {}),
            **self.samples,
            "filters": self.filters,
            "data": self.data,
            **({"generation": self.generation} if self.generation else {}),
            **({"evaluation": self.evaluation} if self.evaluation else {}),
            **self.training,
            **self.task,
            "wall_time_s": round(time.time() - started, 2),
            "finished_at": datetime.now().isoformat(timespec="seconds"),
            "command": sharing.command_line(),  # quoted as a shell takes it back
            "versions": library_versions(),
            **self.test,
            **({"resumes": self.resumes} if self.resumes else {}),
        }


def _counted(number: int, noun: str, plural: str | None = None) -> str:
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def training_lines(facts: dict[str, Any]) -> list[str]:
    """The run header's account of what training will do, from the run report's facts (`RunReport.header`, as
    run.json holds them): steps, epochs and the batch. None for an evaluation."""
    if "planned_steps" not in facts:
        return []
    epochs = facts.get("planned_epochs")
    span = _counted(facts["planned_steps"], "step") + (f" ({epochs:.3g} epochs)" if epochs is not None else "")
    return [f"training: {span}, batch {facts['total_train_batch_size']} = {facts['batch_size']} per device x "
            f"{facts['gradient_accumulation_steps']} accumulation x "
            f"{_counted(facts.get('world_size', 1), 'process', 'processes')}"]
