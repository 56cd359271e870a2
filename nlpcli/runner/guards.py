"""The non-finite guard both loops share: a NaN or inf training loss, or weights that an update made
non-finite, stop the run with exit 2.

The Trainer loop folds every micro-batch loss into one on-device flag (no synchronisation per step) and
checks it, agreed across processes, whenever the Trainer is about to log, evaluate or save; the Accelerate
loop checks each loss before its backward pass. Both check the weights themselves before writing any
checkpoint or the final model (an update can turn them NaN while the loss that led to it was finite). So
no checkpoint is written after training went bad, and the newest checkpoint is the last good one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nlpcli.errors import TrainingDiverged
from nlpcli.runner import checkpoints

ADVICE = (
    "Lower --learning-rate, keep gradient clipping on (--max-grad-norm 1.0), use --precision bf16 or fp32 "
    "(fp16 overflows in T5-family models), and check the data for broken records."
)


def non_finite_loss(step: int, output_dir: Path) -> TrainingDiverged:
    kept = checkpoints.by_step(output_dir)
    where = f"the last good checkpoint is {kept[-1]}" if kept else "no checkpoint had been saved yet"
    return TrainingDiverged(f"The training loss is no longer finite (NaN or inf) at step {step}; the run stopped and "
                     f"{where}.", hint=ADVICE)


def any_process(accelerator: Any, flag: Any) -> bool:
    """True when `flag` (a bool tensor) is set on any process."""
    if accelerator.num_processes > 1:
        flag = accelerator.reduce(flag.float().reshape(1), reduction="sum")
    return bool(flag.any())


def weights_finite(accelerator: Any, model: Any) -> bool:
    """True when every parameter on every process is finite (one synchronisation)."""
    import torch

    flags = [torch.isfinite(p.detach()).all() for p in model.parameters()]
    return not flags or not any_process(accelerator, ~torch.stack(flags).all())


def replicas_agree(accelerator: Any, model: Any) -> bool:
    """True unless data-parallel processes (DDP, accelerate's MULTI_*: each holds the whole model) ended with
    different weights: their gradients were then not averaged, and each trained a model of its own. Sharded models
    (FSDP, DeepSpeed) hold different parts on each process and are not compared. One float64 sum and norm per
    parameter, accumulated without a float64 copy of the weights."""
    import torch

    if accelerator.num_processes < 2 or not accelerator.distributed_type.value.startswith("MULTI_"):
        return True
    sums = [torch.stack([torch.sum(p.detach(), dtype=torch.float64),
                         torch.linalg.vector_norm(p.detach(), dtype=torch.float64)]) for p in model.parameters()]
    if not sums:
        return True
    rows = accelerator.gather(torch.stack(sums).sum(0).to(accelerator.device).reshape(1, 2))
    # identical in practice (the same averaged gradients, the same update); a process that trained alone is off by
    # far more than this margin, which no kernel's rounding could cross
    return bool(torch.allclose(rows, rows[0].expand_as(rows), rtol=1e-6, atol=0.0))


def unsynchronised_replicas(processes: int) -> RuntimeError:
    return RuntimeError(f"The {processes} processes ended training with different weights: their gradients were not "
                        "averaged, so each trained a model of its own. This is a bug in nlpcli; please report it with "
                        "the output of `nlpcli env`.")


class LossGuard:
    """Remembers whether any loss since the run began was non-finite, without synchronising each step."""

    def __init__(self) -> None:
        self.flag: Any = None
        self.stopped_at: int | None = None
        self.accelerator: Any = None

    def observe(self, loss: Any) -> None:
        import torch

        bad = ~torch.isfinite(loss.detach()).all()
        self.flag = bad if self.flag is None else self.flag | bad

    def tripped(self) -> bool:
        return self.flag is not None and any_process(self.accelerator, self.flag)


def trainer_guard_callback(guard: LossGuard) -> Any:
    """A TrainerCallback that stops training, without logging, evaluating or saving, once `guard` trips."""
    from transformers import TrainerCallback

    class NonFiniteLossCallback(TrainerCallback):
        def _check(self, state, control, model):
            if guard.stopped_at is None and (
                guard.tripped() or (control.should_save and not weights_finite(guard.accelerator, model))
            ):
                guard.stopped_at = state.global_step
            if guard.stopped_at is not None:
                control.should_log = control.should_evaluate = control.should_save = False
                control.should_training_stop = True
            return control

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if control.should_log or control.should_evaluate or control.should_save or control.should_training_stop:
                return self._check(state, control, model)
            return control

        def on_epoch_end(self, args, state, control, model=None, **kwargs):
            return self._check(state, control, model)

    return NonFiniteLossCallback()
