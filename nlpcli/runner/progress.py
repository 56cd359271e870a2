"""Rich progress for both loops: a step bar with the latest loss, and one line per evaluation."""

from __future__ import annotations

from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from nlpcli.console import console, is_main_process
from nlpcli.runner.evaluation import TIMING_KEYS


def format_metrics(metrics: dict[str, Any], limit: int = 5) -> str:
    """The headline metrics on one line: lower-case keys (loss, overall scores), not per-group ones."""
    shown = [
        (k, v) for k, v in metrics.items()
        if isinstance(v, float | int) and k == k.lower() and not k.endswith(TIMING_KEYS) and k != "epoch"
    ]
    return "  ".join(f"{k}={v:.4g}" for k, v in shown[:limit])


class TrainingProgress:
    """A progress bar over optimizer steps; silent on every process but the main one."""

    def __init__(self) -> None:
        self.enabled = is_main_process()
        self._progress: Progress | None = None
        self._task: Any = None

    def start(self, total_steps: int, done: int = 0) -> None:
        if not self.enabled:
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
        if self._progress is not None:
            fields = {"loss": f"loss {loss:.4f}"} if loss is not None else {}
            self._progress.update(self._task, completed=step, **fields)

    def log_evaluation(self, label: str, metrics: dict[str, Any]) -> None:
        if self.enabled:
            text = f"[cyan]{label}[/cyan] {format_metrics(metrics)}"
            (self._progress.console if self._progress else console).print(text)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def trainer_callback(progress: TrainingProgress) -> Any:
    """A transformers TrainerCallback that drives `progress` (built lazily: transformers is heavy)."""
    from transformers import TrainerCallback

    class RichProgressCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            progress.start(state.max_steps, state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            progress.update(state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                progress.update(state.global_step, float(logs["loss"]))

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if metrics is not None:
                label = f"epoch {state.epoch:.2f}" if state.global_step else "evaluation"
                progress.log_evaluation(label, metrics)

        def on_train_end(self, args, state, control, **kwargs):
            progress.stop()

    return RichProgressCallback()
