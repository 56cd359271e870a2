"""The callbacks through which the runner watches and steers the transformers Trainer: checkpoints put in
place, signals, the evaluation before training and the epoch's evaluation before its checkpoint, the run log,
TensorBoard, collator epochs."""

from __future__ import annotations

import math
import time
from typing import Any

from nlpcli import layout
from nlpcli.runner import checkpoints, interrupt
from nlpcli.runner.context import RunContext
from nlpcli.runner.history import RunLog
from nlpcli.runner.record import LossTotal, RunRecord


def at_whole_epoch(state: Any) -> bool:
    """Whether the Trainer's state stands at an epoch's end (its fractional epoch count a whole number)."""
    return abs((state.epoch or 0) - round(state.epoch or 0)) < 1e-6


def checkpoint_callback(ctx: RunContext, losses: LossTotal, trainer: Any) -> Any:
    """Puts each checkpoint the Trainer wrote into the staging folder (its `output_dir`) in place, once every
    process has written its part (its RNG state): the run record goes in, then one rename makes it count (see
    runner/checkpoints.py); then rotation, sparing the best checkpoint, and the checkpoint hooks (--push-to-hub).
    The Trainer's own rotation, run on the staging folder, finds only the checkpoint just written there."""
    from transformers import TrainerCallback

    class CheckpointInPlace(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            accelerator = trainer.accelerator
            final = ctx.output_dir / layout.checkpoint_name(state.global_step)
            losses.settle(accelerator)
            losses.record.checkpoints += 1
            accelerator.wait_for_everyone()  # every process has written its part
            if args.should_save:
                staged = checkpoints.staging_folder(final)
                losses.record.save(staged)
                checkpoints.publish(staged, final)
                checkpoints.keep_newest(ctx.output_dir, args.save_total_limit, keep=losses.record.best_step)
                ctx.checkpoint_saved(final)
            accelerator.wait_for_everyone()

    return CheckpointInPlace()


def interrupt_callback(ctx: RunContext, trainer: Any) -> Any:
    """SIGTERM/SIGINT (runner/interrupt.py): at the end of the optimizer step under way, agreed across processes,
    the Trainer saves a checkpoint there (unless saving is off) and stops; an epoch cut short has no epoch-end
    evaluation or save (one that ended there has, as in a run never interrupted)."""
    from transformers import TrainerCallback

    class InterruptCallback(TrainerCallback):
        signum: int | None = None
        step: int | None = None

        def on_step_end(self, args, state, control, **kwargs):
            if self.signum is None:
                self.signum = interrupt.agreed(trainer.accelerator)
                if self.signum is not None:
                    self.step = state.global_step
                    control.should_save = control.should_save or ctx.cfg.saving_strategy != "no"
                    control.should_training_stop = True
            return control

        def on_epoch_end(self, args, state, control, **kwargs):
            if self.signum is not None and not at_whole_epoch(state):
                control.should_save = control.should_evaluate = False
                control.should_training_stop = True
            return control

    return InterruptCallback()


def evaluation_first_callback(ctx: RunContext) -> Any:
    """With --eval-strategy epoch, the step checkpoint of an epoch's (or the run's) last step is saved after that
    epoch's evaluation, which it then holds, as in the Accelerate loop: a run killed between the two evaluates the
    epoch again once resumed. (The Trainer would save at the step's end, then evaluate at the epoch's.)"""
    from transformers import TrainerCallback

    class EvaluationFirst(TrainerCallback):
        deferred = False

        def on_step_end(self, args, state, control, **kwargs):
            ends = at_whole_epoch(state) or state.global_step >= state.max_steps
            if control.should_save and ends and ctx.cfg.evaluation_strategy == "epoch":  # a signal's stop too
                control.should_save, self.deferred = False, True  # saved by on_epoch_end's save, after the evaluation
            return control

        def on_epoch_end(self, args, state, control, **kwargs):
            if self.deferred:
                control.should_save, self.deferred = True, False
            return control

    return EvaluationFirst()


def before_training_callback(ctx: RunContext, trainer: Any) -> Any:
    """The evaluation before training (runner/evaluation.py `before_training`), made once the Trainer has set
    the model up for training; the callback keeps its `*_before` figures (`metrics`).
    Made before `train()`, the evaluation would prepare the model for evaluation alone, and the Trainer would then
    leave it without its DistributedDataParallel/FSDP wrapper: each process would train its own model.
    Added before the run log's callback, it is not counted as an evaluation made while training."""
    from transformers import TrainerCallback

    from nlpcli.runner.evaluation import before_training

    class EvaluationBeforeTraining(TrainerCallback):
        metrics: dict[str, Any] = {}

        def on_train_begin(self, args, state, control, **kwargs):
            self.metrics = before_training(ctx.output_dir, False, trainer.evaluate)

    return EvaluationBeforeTraining()


def monitor_callback(run_log: RunLog, record: RunRecord, ctx: RunContext, trainer: Any) -> Any:
    """Feeds the run log (history, progress) from the Trainer's logs and evaluations, and the run record
    (best model, early stopping, a stop the evaluation hooks ask for) from the evaluations made while training.
    Its `seconds` are the training's: from the first batch (after the Trainer's set-up and the evaluation before
    training) to the end of the last step, the span the Accelerate loop times (0 when `train()` trained nothing)."""
    from transformers import TrainerCallback

    cfg = ctx.cfg

    class MonitorCallback(TrainerCallback):
        training = False
        since: tuple[float, int] = (0.0, 0)  # (time, samples) at the previous log
        began = 0.0
        seconds = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self.training, self.since = True, (time.perf_counter(), trainer.samples)
            self.began = self.since[0]
            run_log.progress.start(state.max_steps, state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            run_log.progress.update(state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "loss" not in logs:
                return
            now, samples = time.perf_counter(), trainer.samples
            rate = (samples - self.since[1]) * args.world_size / (now - self.since[0]) if now > self.since[0] else None
            self.since = (now, samples)
            run_log.training(state.global_step, state.epoch or 0.0, float(logs["loss"]), float(logs["learning_rate"]),
                             logs.get("grad_norm"), round(rate, 2) if rate is not None else None)

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if metrics is None:
                return
            run_log.evaluation(state.global_step, state.epoch, metrics, self.training)
            if self.training:
                record.observe(cfg, state.global_step, metrics)
                stop = ctx.after_evaluation(state.global_step, metrics)
                if stop is not None:
                    record.request_stop(state.global_step, stop.reason)
                if record.should_stop:
                    control.should_training_stop = True

        def on_train_end(self, args, state, control, **kwargs):
            self.training = False
            self.seconds = time.perf_counter() - self.began
            run_log.progress.stop()

    return MonitorCallback()


def tensorboard_callback(ctx: RunContext) -> Any:
    """transformers' own TensorBoard callback, writing to <output>/tensorboard (main process only)."""
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(SummaryWriter(log_dir=str(ctx.output_dir / layout.TENSORBOARD)))


def collator_epochs(collator: Any) -> Any:
    """Tells a collator that has `set_epoch` (as the Accelerate loop does) which epoch starts."""
    from transformers import TrainerCallback

    class CollatorEpoch(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            collator.set_epoch(math.floor(state.epoch + 1e-9))  # a resumed epoch starts part-way: 1.4 -> 1

    return CollatorEpoch()
