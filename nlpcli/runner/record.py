"""What a run carries from checkpoint to checkpoint besides the weights: the summed training loss (for
`train_loss`), how many evaluations and checkpoints it made, and the best evaluation so far (for
`--load-best-model-at-end` and `--early-stopping-patience`), and a stop an evaluation hook asked for.

Each checkpoint holds a copy (nlpcli_record.json), so a resumed run carries on from the same record and
ends with the same figures as a run that was never interrupted.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nlpcli import layout
from nlpcli.config import RunConfig
from nlpcli.errors import UserError
from nlpcli.files import write_text_atomic


@dataclass
class RunRecord:
    loss_total: float = 0.0  # per-step training losses (mean over processes), summed up to the last checkpoint
    evaluations: int = 0  # evaluations while training (by --eval-strategy)
    checkpoints: int = 0  # checkpoints written
    best_metric: float | None = None
    best_step: int | None = None
    evaluations_without_improvement: int = 0
    stopped_early_at: int | None = None
    stopped_on_request_at: int | None = None  # an evaluation hook (`runner.context.Stop`) ended training here
    stop_reason: str | None = None

    def observe(self, cfg: RunConfig, step: int, metrics: dict[str, Any]) -> None:
        """Count an evaluation made while training and follow the best value of --metric-for-best-model."""
        self.evaluations += 1
        key = cfg.best_metric_key
        if key not in metrics:
            if cfg.load_best_model_at_end or cfg.early_stopping_patience:
                found = ", ".join(k for k in metrics if k.startswith("eval_") and isinstance(metrics[k], int | float))
                raise UserError(f"--metric-for-best-model {cfg.metric_for_best_model}: this task's evaluation "
                                f"reports {found}.")
            return
        value = float(metrics[key])
        better = math.isfinite(value) and (
            self.best_metric is None
            or (value > self.best_metric if cfg.higher_is_better else value < self.best_metric)
        )
        if better:
            self.best_metric, self.best_step, self.evaluations_without_improvement = value, step, 0
        else:
            self.evaluations_without_improvement += 1
            patience = cfg.early_stopping_patience
            if patience and self.evaluations_without_improvement >= patience:
                self.stopped_early_at = step

    def request_stop(self, step: int, reason: str) -> None:
        """An evaluation hook ended training at `step` (the first request counts)."""
        if self.stopped_on_request_at is None:
            self.stopped_on_request_at, self.stop_reason = step, reason

    @property
    def should_stop(self) -> bool:
        return self.stopped_early_at is not None or self.stopped_on_request_at is not None

    def best_checkpoint(self, cfg: RunConfig, output_dir: Path) -> Path | None:
        """The checkpoint to keep as the output model with --load-best-model-at-end."""
        if not cfg.load_best_model_at_end or self.best_step is None:
            return None
        path = output_dir / layout.checkpoint_name(self.best_step)
        return path if path.is_dir() else None

    def save(self, checkpoint: Path) -> None:
        write_text_atomic(checkpoint / layout.RECORD, json.dumps(asdict(self)))

    @classmethod
    def load(cls, checkpoint: Path | None) -> RunRecord:
        path = checkpoint / layout.RECORD if checkpoint is not None else None
        return cls(**json.loads(path.read_text())) if path is not None and path.is_file() else cls()

    def summary(self, cfg: RunConfig, steps: int, best_loaded: bool) -> dict[str, Any]:
        """What run.json reports about the run's evaluations, checkpoints and model selection."""
        info: dict[str, Any] = {"evaluations": self.evaluations, "checkpoints_written": self.checkpoints}
        if self.best_step is not None:
            info["best_model"] = {"metric": cfg.best_metric_key, "value": self.best_metric, "step": self.best_step,
                                  "kept_as_output": best_loaded}
        if cfg.early_stopping_patience:
            info["early_stopping"] = {"patience": cfg.early_stopping_patience, "stopped": self.should_stop,
                                      "stopped_at_step": self.stopped_early_at, "steps_trained": steps}
        if self.stopped_on_request_at is not None:
            info["stopped_on_request"] = {"at_step": self.stopped_on_request_at, "reason": self.stop_reason}
        return info


class LossTotal:
    """Sums per-step training losses on the device (no synchronisation per step) and settles them into the
    record at each checkpoint and at the end: the same segments whether or not the run was resumed."""

    def __init__(self, record: RunRecord) -> None:
        self.record = record
        self.pending: Any = None

    def add(self, loss: Any) -> None:
        value = loss.detach().double()
        self.pending = value if self.pending is None else self.pending + value

    def settle(self, accelerator: Any) -> None:
        """Add what this segment summed, averaged over processes (every process must call it)."""
        import torch

        pending = self.pending if self.pending is not None else torch.zeros((), dtype=torch.float64)
        pending = pending.to(accelerator.device).reshape(1)
        self.record.loss_total += float(accelerator.gather(pending).mean())
        self.pending = None

    def mean(self, steps: int) -> float | None:
        return self.record.loss_total / steps if steps > 0 else None


def finish_training(ctx: Any, losses: LossTotal, steps: int, epochs: float | None, best_loaded: bool) -> None:
    """What either loop reports once training is over: train_loss for metrics.json; the optimizer steps and
    epochs trained (None: a stream's), the record's counts and the memory-saving setting for the run report
    (`ctx`: the RunContext)."""
    ctx.report.training.update({"steps": steps, "epochs": None if epochs is None else round(epochs, 4)})
    ctx.report.training.update(losses.record.summary(ctx.cfg, steps, best_loaded))
    ctx.report.training["gradient_checkpointing"] = bool(getattr(ctx.model, "is_activation_checkpointing", False))
    ctx.train_loss = losses.mean(steps)
