"""The `--loop trainer` path: drive the transformers Trainer from a Task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nlpcli import layout
from nlpcli.console import say
from nlpcli.runner import checkpoints, interrupt, length_split, optimization, settings, trackers
from nlpcli.runner.context import RunContext
from nlpcli.runner.evaluation import before_training, evaluate_batches
from nlpcli.runner.guards import (
    LossGuard,
    non_finite_loss,
    replicas_agree,
    trainer_guard_callback,
    unsynchronised_replicas,
    weights_finite,
)
from nlpcli.runner.history import RunLog
from nlpcli.runner.progress import TrainingProgress
from nlpcli.runner.record import LossTotal, RunRecord, finish_training
from nlpcli.runner.sampling import length_grouped_sampler
from nlpcli.runner.trainer_callbacks import (
    before_training_callback,
    checkpoint_callback,
    collator_epochs,
    evaluation_first_callback,
    interrupt_callback,
    monitor_callback,
    tensorboard_callback,
)


def training_arguments(ctx: RunContext) -> Any:
    """The run's TrainingArguments, whose `output_dir` is the output folder's staging folder: the Trainer writes
    each checkpoint there, and `checkpoint_callback` renames it into the output folder once complete. (The
    final model is saved into the output folder by name.)"""
    return settings.training_arguments(ctx.cfg, str(checkpoints.staging_root(ctx.output_dir)), ctx.mixed_precision,
                                       run_folder=str(ctx.output_dir))


def trainer_class(ctx: RunContext, guard: LossGuard | None = None, losses: LossTotal | None = None) -> type:
    """A Trainer whose evaluation is the shared one (same numbers as the Accelerate loop, exact under DDP),
    whose training losses feed the non-finite loss guard and the run's loss total, and whose training loader
    follows --group-by-length as the Accelerate loop's does. It overrides public methods only (those the
    Trainer's documentation invites subclasses to override)."""
    from transformers import Trainer
    from transformers.trainer_utils import EvalLoopOutput

    loss_fn = ctx.prepared.training_loss
    guard = guard or LossGuard()
    losses = losses or LossTotal(RunRecord())

    class NlpcliTrainer(Trainer):
        # Every micro-batch's loss is its own mean, which training_step divides by the accumulation steps (as
        # the Accelerate loop does). The Trainer would instead pass `num_items_in_batch` to any model whose
        # forward takes **kwargs and then not divide; models that ignore it (BERT's heads do) logged and
        # back-propagated N times their loss with N accumulation steps.
        loss_is_scaled_for_ga = False
        tokens = 0  # training tokens of this process (for tokens/s), counted as the Accelerate loop counts them
        samples = 0  # training samples of this process
        positions = 0  # token positions this process's forward passes computed on, padding included
        batches_split = 0  # training batches of this process run as length-sorted pieces (--length-split)
        splitting: length_split.Splitting | None = None  # set once the accelerator exists

        def training_step(self, model, inputs, num_items_in_batch=None):
            self.tokens += optimization.batch_tokens(inputs)
            self.samples += optimization.batch_samples(inputs)
            loss = super().training_step(model, inputs, num_items_in_batch)  # this micro-batch's share of the step
            guard.observe(loss)
            losses.add(loss)
            return loss

        def get_train_dataloader(self):
            if not ctx.cfg.group_by_length:
                return super().get_train_dataloader()
            return self.accelerator.prepare(length_grouped_loader(self.train_dataset, self.data_collator, self.args))

        def get_decay_parameter_names(self, model):
            return optimization.decay_parameter_names(model)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not model.training or return_outputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            done = length_split.batch_loss(inputs, self.splitting, lambda piece: self._mean_loss(model, piece))
            self.positions += done.positions
            self.batches_split += done.split
            return done.loss

        def _mean_loss(self, model, inputs):
            """A batch's (or a piece's) mean training loss: the model's, or the task's own."""
            if loss_fn is None:
                return super().compute_loss(model, inputs)  # no num_items_in_batch: the batch's mean (see above)
            return loss_fn(model(**optimization.without_labels(inputs)), inputs)

        def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                            metric_key_prefix="eval"):
            model = self.model_wrapped if self.is_in_train else self.accelerator.prepare_model(
                self.model, evaluation_mode=True
            )
            metrics = evaluate_batches(self.accelerator, model, dataloader, ctx)
            metrics = {f"{metric_key_prefix}_{k.removeprefix('eval_')}": v for k, v in metrics.items()}
            return EvalLoopOutput(predictions=None, label_ids=None, metrics=metrics, num_samples=len(ctx.eval_features))

    return NlpcliTrainer


def length_grouped_loader(dataset: Any, collator: Any, args: Any) -> Any:
    """--group-by-length: the training DataLoader the Trainer would build from `args`, with the sampler both
    loops share (seeded per epoch). The batch size is `args`' own: a pass-through `auto_find_batch_size`, which
    shrinks the Trainer's batch size after running out of GPU memory, does not shrink this loader's."""
    from functools import partial

    from torch.utils.data import DataLoader
    from transformers.trainer_utils import seed_worker

    sampler = length_grouped_sampler(dataset, args.train_batch_size * args.gradient_accumulation_steps, args.seed)
    return DataLoader(
        dataset,
        batch_size=args.train_batch_size,
        sampler=sampler,
        collate_fn=collator,
        drop_last=args.dataloader_drop_last,
        num_workers=args.dataloader_num_workers,
        pin_memory=args.dataloader_pin_memory,
        persistent_workers=args.dataloader_persistent_workers,
        multiprocessing_context=args.dataloader_multiprocessing_context,
        prefetch_factor=args.dataloader_prefetch_factor,
        in_order=args.dataloader_in_order,
        worker_init_fn=partial(seed_worker, num_workers=args.dataloader_num_workers, rank=args.process_index),
    )


def build_trainer(ctx: RunContext, guard: LossGuard, record: RunRecord,
                  before: bool = False) -> tuple[Any, RunLog, LossTotal]:
    """The Trainer and its callbacks; with `before`, the evaluation before training is made once training has
    begun, by `trainer.before_training` (see `before_training_callback`; None without)."""
    from transformers import PrinterCallback

    from nlpcli.console import is_main_process

    task = ctx.task
    run_log = RunLog(ctx.output_dir, TrainingProgress(), eval_only=ctx.cfg.eval_only)
    losses = LossTotal(record)
    collator = task.collator(ctx.tokenizer, ctx.model, ctx.cfg)
    trainer = trainer_class(ctx, guard, losses)(
        model=ctx.model,
        args=training_arguments(ctx),
        train_dataset=ctx.model_inputs(ctx.train_features) if ctx.train_features is not None else None,
        eval_dataset=ctx.model_inputs(ctx.eval_features),
        processing_class=ctx.tokenizer,
        data_collator=collator,
    )
    if hasattr(collator, "set_epoch"):
        trainer.add_callback(collator_epochs(collator))
    trainer.splitting = length_split.for_run(ctx.cfg, trainer.accelerator, ctx.model, task.shifts_labels,
                                             ctx.prepared.training_loss is not None)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(checkpoint_callback(ctx, losses, trainer))
    trainer.before_training = before_training_callback(ctx, trainer) if before else None
    if trainer.before_training is not None:
        trainer.add_callback(trainer.before_training)  # before the run log's callback
    trainer.monitor = monitor_callback(run_log, record, ctx, trainer)
    trainer.add_callback(trainer.monitor)
    if "tensorboard" in trackers.chosen(ctx.cfg) and is_main_process():  # as the other loop
        trainer.add_callback(tensorboard_callback(ctx))
    trackers.set_project(trackers.chosen(ctx.cfg))
    trainer.end_trackers = trackers.adapt_trainer_callbacks(trainer)  # called after the final evaluation
    trainer.interrupts = interrupt_callback(ctx, trainer)
    trainer.add_callback(trainer.interrupts)
    trainer.add_callback(evaluation_first_callback(ctx))  # after the interrupt's: a stop saves at its step
    guard.accelerator = trainer.accelerator
    trainer.add_callback(trainer_guard_callback(guard))  # last: it overrides the others' save/evaluate
    return trainer, run_log, losses


def planned_steps(trainer: Any, cfg: Any) -> int:
    """The optimizer steps this configuration trains in all: --max-steps, or its epochs' worth."""
    return settings.total_steps(cfg, None if cfg.max_steps > 0 else len(trainer.get_train_dataloader()))


def checkpoint_step(checkpoint: Path) -> int:
    return json.loads((checkpoint / layout.TRAINER_STATE).read_text()).get("global_step", 0)


def checkpoint_epoch(checkpoint: Path) -> float:
    return float(json.loads((checkpoint / layout.TRAINER_STATE).read_text()).get("epoch") or 0.0)


def finished_in(checkpoint: Path, trainer: Any, cfg: Any) -> bool:
    """True when `checkpoint` already holds all the training `cfg` asks for (or early stopping ended it)."""
    return checkpoint_step(checkpoint) >= planned_steps(trainer, cfg) or RunRecord.load(checkpoint).should_stop


def run(ctx: RunContext, resume: bool, before: bool) -> dict[str, Any]:
    """Train (unless eval-only), save the model (the best one with --load-best-model-at-end), and return the
    final evaluation metrics."""
    from nlpcli.console import is_main_process

    try:
        return _run(ctx, resume, before)
    finally:
        if is_main_process():
            checkpoints.remove_staging_root(ctx.output_dir)  # the Trainer made it up front, even when unused


def _run(ctx: RunContext, resume: bool, before: bool) -> dict[str, Any]:
    from transformers import TrainerState

    guard = LossGuard()
    latest = checkpoints.latest(ctx.output_dir) if resume and not ctx.cfg.eval_only else None
    record = RunRecord.load(latest)
    during_training = before and latest is None  # a fresh run measures it once train() began; a resume reads it
    trainer, run_log, losses = build_trainer(ctx, guard, record, during_training)
    run_log.start(checkpoint_step(latest) if latest is not None else None)
    if latest is not None:
        say(checkpoints.resuming_line(latest, checkpoint_step(latest), checkpoint_epoch(latest)))
    metrics: dict[str, Any] = {}
    if before and not during_training:
        metrics.update(before_training(ctx.output_dir, latest is not None, trainer.evaluate))
    if ctx.cfg.eval_only:
        metrics.update(trainer.evaluate())
        return metrics
    try:
        if latest is not None and finished_in(latest, trainer, ctx.cfg):
            # the Trainer would take one step past the end; load the last weights and finish the run instead
            say(f"training is already complete ({latest.name}); evaluating and saving the model.")
            checkpoints.load_weights(trainer.model, latest)
            trainer.state = TrainerState.load_from_json(str(latest / layout.TRAINER_STATE))
        else:
            interrupt.begin_training()
            trainer.train(resume_from_checkpoint=str(latest) if latest is not None else None)
    finally:
        run_log.progress.stop()
    evaluated = trainer.before_training
    metrics.update(evaluated.metrics if evaluated is not None else {})
    if guard.stopped_at is not None or not weights_finite(trainer.accelerator, trainer.model):
        raise non_finite_loss(trainer.state.global_step if guard.stopped_at is None else guard.stopped_at,
                              ctx.output_dir)
    if not replicas_agree(trainer.accelerator, trainer.model):
        raise unsynchronised_replicas(trainer.accelerator.num_processes)
    stopped = trainer.interrupts
    interrupt.end_training()
    if stopped.signum is not None:
        raise interrupt.stop(stopped.signum, stopped.step, ctx.output_dir, saved=ctx.cfg.saving_strategy != "no")
    losses.settle(trainer.accelerator)
    ctx.report.training.update(optimization.training_facts(trainer.accelerator, trainer, trainer.monitor.seconds))
    step = trainer.state.global_step
    best = record.best_checkpoint(ctx.cfg, ctx.output_dir)
    if best is not None:
        checkpoints.load_weights(trainer.model, best)
    trainer.save_model(str(ctx.output_dir))
    history = trainer.state.log_history
    last_eval = next((log for log in reversed(history) if any(k.startswith("eval_") for k in log)), None)
    final_step = record.best_step if best is not None else step
    if last_eval is not None and last_eval.get("step") == final_step:
        metrics.update(last_eval)
    else:
        metrics.update(trainer.evaluate())
    trackers.end_trainer_runs(trainer.end_trackers, trackers.chosen(ctx.cfg))
    streamed = not hasattr(ctx.train_features, "__len__")  # its epochs are passes over a stream: not counted
    finish_training(ctx, losses, step, None if streamed else trainer.state.epoch, best is not None)
    return metrics

