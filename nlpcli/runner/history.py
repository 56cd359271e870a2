"""What a training run reports as it goes, the same from both loops: `log_history.jsonl` in the output
folder (one JSON object per logging interval and per evaluation), the progress display, and the Accelerate
loop's trackers (--report-to: the same keys, epoch included; the Trainer loop uses transformers' callbacks).

A training line: {"step", "epoch", "loss", "learning_rate", "grad_norm", "samples_per_second"}; an
evaluation line: {"step", "epoch", "eval_...": ...}. A resumed run first drops the lines past the
checkpoint it resumes from, so its history ends as an uninterrupted run's would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nlpcli import layout
from nlpcli.console import is_main_process
from nlpcli.files import write_text_atomic
from nlpcli.metrics.kinds import metric_kind
from nlpcli.runner.progress import TrainingProgress, evaluation_label


def read_history(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class RunLog:
    def __init__(self, output_dir: Path, progress: TrainingProgress,
                 tracker: Callable[[dict[str, float], int], None] | None = None, eval_only: bool = False) -> None:
        self.path = output_dir / layout.HISTORY
        self.progress = progress
        self.tracker = tracker  # (scalars, step) -> None, e.g. Accelerator.log
        self.main = is_main_process()
        self.eval_only = eval_only  # its one evaluation is not "before training"

    def start(self, resumed_step: int | None) -> None:
        """A new history, or (resuming) the old one up to the checkpoint's step."""
        if not self.main:
            return
        kept = [r for r in read_history(self.path) if r.get("step", 0) <= resumed_step] if resumed_step else []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def _append(self, record: dict[str, Any]) -> None:
        if self.main:
            with self.path.open("a", encoding="utf-8") as out:  # one whole line per write: `tail -f` friendly
                out.write(json.dumps(record, allow_nan=True) + "\n")

    def training(self, step: int, epoch: float, loss: float, learning_rate: float, grad_norm: float | None,
                 samples_per_second: float | None) -> None:
        record = {"step": step, "epoch": round(epoch, 4), "loss": loss, "learning_rate": learning_rate,
                  "grad_norm": grad_norm, "samples_per_second": samples_per_second}
        self._append(record)
        self.progress.log_training(record)
        if self.tracker is not None:
            self.tracker({k: v for k, v in record.items() if k != "step" and v is not None}, step)

    def evaluation(self, step: int, epoch: float | None, metrics: dict[str, Any], training: bool) -> None:
        shown = {k: v for k, v in metrics.items()
                 if metric_kind(k).split == "eval" and not metric_kind(k).timing and isinstance(v, int | float)}
        record = {"step": step, "epoch": round(epoch or 0.0, 4), **shown}
        self._append(record)
        label = "evaluation" if self.eval_only else evaluation_label(step, epoch, training)
        self.progress.log_evaluation(label, shown)
        if self.tracker is not None:
            self.tracker({k: v for k, v in record.items() if k != "step"}, step)
