"""Progress for both loops: on a terminal, a rich step bar with the latest loss; through a pipe or into a
file, one plain line per logging interval (step/total, epoch, loss, learning rate, samples/s, ETA). Either way
one line per evaluation, never wrapped, no escape codes off a terminal; a baseline's figures (lead-3), the same
at every evaluation, only on the first line that has them."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from nlpcli.console import console, is_main_process
from nlpcli.metrics.kinds import BEFORE_SUFFIX, metric_kind


def format_metrics(metrics: dict[str, Any], limit: int = 5) -> str:
    """The headline metrics on one line: loss and overall scores, not per-group ones nor timings."""
    shown = [
        (k, v) for k, v in metrics.items()
        if isinstance(v, float | int) and not metric_kind(k).per_group and not metric_kind(k).timing and k != "epoch"
    ]
    return "  ".join(f"{k}={v:.4g}" for k, v in shown[:limit])


def evaluation_label(step: int, epoch: float | None, training: bool) -> str:
    """The same words for an evaluation in both loops."""
    if not training:  # outside training: before it, or the final evaluation after it
        return "eval before training" if step == 0 else "final evaluation"
    return f"eval step {step} (epoch {epoch or 0:.2f})"


def split_baselines(metrics: dict[str, Any], shown: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the model's figures, the baseline figures not yet in `shown`); `shown` is updated. A baseline's figures
    are the same at every evaluation of a run (and before training), so a log shows them once."""
    own = {k: v for k, v in metrics.items() if not metric_kind(k).baseline}
    fresh = {}
    for key, value in metrics.items():
        if key not in own:
            plain = key.removesuffix(BEFORE_SUFFIX)
            if shown.get(plain) != value:
                fresh[key] = shown[plain] = value
    return own, fresh


def training_line(record: dict[str, Any], total: int, eta_s: float | None) -> str:
    """One plain log line: `step 20/250 epoch 1.33 loss 2.3456 lr 1.2e-05 grad_norm 0.91 samples/s 45.1 eta 0:01:23`."""
    parts = [f"step {record['step']}/{total}", f"epoch {record['epoch']:.2f}", f"loss {record['loss']:.4f}",
             f"lr {record['learning_rate']:.3g}"]
    if record.get("grad_norm") is not None:
        parts.append(f"grad_norm {record['grad_norm']:.4g}")
    if record.get("samples_per_second") is not None:
        parts.append(f"samples/s {record['samples_per_second']:.1f}")
    if eta_s is not None:
        parts.append(f"eta {timedelta(seconds=round(eta_s))}")
    return " ".join(parts)


class TrainingProgress:
    """Step progress; a bar on a terminal, plain lines elsewhere; silent on every process but the main one."""

    def __init__(self) -> None:
        self.enabled = is_main_process()
        self.plain = not console.is_terminal
        self._progress: Progress | None = None
        self._task: Any = None
        self._total = 0
        self._start: tuple[float, int] | None = None  # (time, step) this session started at, for the ETA
        self._step = 0
        self._baselines: dict[str, Any] = {}  # the baseline figures printed so far

    def start(self, total_steps: int, done: int = 0) -> None:
        self._total, self._start, self._step = total_steps, (time.perf_counter(), done), done
        if not self.enabled or self.plain:
            return
        self._progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task("train", total=total_steps, completed=done, loss="")
        self._progress.start()

    def update(self, step: int, loss: float | None = None) -> None:
        self._step = step
        if self._progress is not None:
            fields = {"loss": f"loss {loss:.4f}"} if loss is not None else {}
            self._progress.update(self._task, completed=step, **fields)

    def log_training(self, record: dict[str, Any]) -> None:
        """A logging interval's record (see runner.history): a plain line, or the bar's loss."""
        if not self.enabled:
            return
        if not self.plain:
            self.update(record["step"], record["loss"])
            return
        eta = None
        if self._start is not None and record["step"] > self._start[1]:
            rate = (time.perf_counter() - self._start[0]) / (record["step"] - self._start[1])
            eta = rate * max(0, self._total - record["step"])
        console.print(training_line(record, self._total, eta), markup=False, soft_wrap=True)

    def log_evaluation(self, label: str, metrics: dict[str, Any]) -> None:
        """One line: `label: figures` (`eval step 4 (epoch 2.00): eval_loss=...`); baseline figures once."""
        if not self.enabled:
            return
        own, baselines = split_baselines(metrics, self._baselines)
        figures = format_metrics(own, limit=8 if self.plain else 5)
        if baselines:
            figures += f"  (baseline, the same at every evaluation: {format_metrics(baselines, limit=len(baselines))})"
        if self.plain:
            console.print(f"{label}: {figures}", markup=False, soft_wrap=True)
        else:
            (self._progress.console if self._progress else console).print(
                f"[cyan]{label}[/cyan] {escape(figures)}", soft_wrap=True)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        elif self.enabled and self.plain and self._start is not None:
            seconds = round(time.perf_counter() - self._start[0])
            console.print(f"training ended at step {self._step}/{self._total} after {timedelta(seconds=seconds)}",
                          markup=False, soft_wrap=True)
        self._start = None
