"""The `--loop accelerate` path: a plain training loop on Accelerate, same Task, same outputs.

The Trainer's optimizer for `--optim` (fused AdamW by default) with weight decay (not on biases and
LayerNorm weights), the configured warm-up and schedule, the task's training loss when it has one,
evaluations and checkpoints when `--eval-strategy` / `--save-strategy` say (as the Trainer places them:
each epoch's end, or every N steps and the last step), the shared evaluation (`gather_for_metrics`: no
sample counted twice), best-model selection and early stopping, and the final model saved once from the
main process.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from nlpcli.console import say
from nlpcli.errors import UserError
from nlpcli.metrics.kinds import BEFORE_SUFFIX
from nlpcli.runner import checkpoints, interrupt, length_split, loop_saving, optimization, settings, trackers
from nlpcli.runner.context import RunContext
from nlpcli.runner.evaluation import before_training, evaluate_batches
from nlpcli.runner.guards import any_process, non_finite_loss, replicas_agree, unsynchronised_replicas, weights_finite
from nlpcli.runner.history import RunLog
from nlpcli.runner.progress import TrainingProgress
from nlpcli.runner.record import LossTotal, RunRecord, finish_training
from nlpcli.runner.sampling import length_grouped_sampler, loader_generator


class LogInterval:
    """The step losses summed since the last training log, and when it started."""

    def __init__(self, samples: int) -> None:
        self.loss: Any = 0.0
        self.steps = 0
        self.started, self.samples = time.perf_counter(), samples

    def add(self, step_loss: Any) -> None:
        self.loss, self.steps = step_loss.double() + self.loss, self.steps + 1


class AccelerateLoop:
    def __init__(self, ctx: RunContext) -> None:
        import torch
        from accelerate import Accelerator, DataLoaderConfiguration
        from torch.utils.data import DataLoader

        self.ctx = ctx
        cfg = ctx.cfg
        self.trackers = trackers.chosen(cfg)
        # first: building TrainingArguments resets accelerate's shared state, which an Accelerator then sets up
        self.args = settings.training_arguments(cfg, str(ctx.output_dir), ctx.mixed_precision)
        self.accelerator = Accelerator(
            mixed_precision=ctx.mixed_precision,
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            cpu=not torch.cuda.is_available(),
            # seeded per-epoch shuffles: a run resumed mid-epoch sees the batches it had not seen yet
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
            **settings.accelerator_options(cfg),
            log_with=trackers.accelerate_log_with(self.trackers, ctx.output_dir) or None,
        )
        self.collator = ctx.task.collator(ctx.tokenizer, ctx.model, cfg)
        self.eval_loader = DataLoader(
            ctx.model_inputs(ctx.eval_features),
            batch_size=cfg.per_device_eval_batch_size,
            collate_fn=self.collator,
            generator=loader_generator(cfg.seed),
        )
        self.run_log = RunLog(ctx.output_dir, TrainingProgress(), self._track if self.trackers else None, cfg.eval_only)
        self.loss_fn = ctx.prepared.training_loss
        self.last_evaluation: tuple[int, dict[str, Any]] | None = None  # (step, metrics) of the latest one
        self.losses = LossTotal(RunRecord())  # its record: train loss, evaluations, best model, early stop
        self.tokens: Any = 0  # training tokens of this process, this session (a tensor once counting)
        self.samples = 0  # training samples of this process, this session
        self.positions = 0  # token positions this process's forward passes computed on, padding included
        self.batches_split = 0  # training batches of this process run as length-sorted pieces (--length-split)
        self.splitting = length_split.for_run(cfg, self.accelerator, ctx.model, ctx.task.shifts_labels,
                                              ctx.prepared.training_loss is not None)
        self.epoch_length = 1  # batches in a training epoch (for the fractional epoch in logs)
        self.deferred_save: dict[str, int] | None = None  # a step checkpoint due after the epoch's evaluation
        self.interval = LogInterval(0)  # the logging interval under way (it may span epochs)
        self.streamed = False  # --streaming: an epoch's length is not known in advance
        self.epoch_position = 0.0  # epochs trained so far (fractional), as the Trainer's state.epoch counts them

    @property
    def record(self) -> RunRecord:
        return self.losses.record

    def _track(self, scalars: dict[str, float], step: int) -> None:
        from transformers.integrations.integration_utils import rewrite_logs

        self.accelerator.log(rewrite_logs(scalars), step=step)  # train/loss, eval/loss: the Trainer's names

    def evaluate(self, model: Any, eval_loader: Any) -> dict[str, Any]:
        return evaluate_batches(self.accelerator, model, eval_loader, self.ctx)

    def _prepare_model(self) -> Any:
        model = self.ctx.model
        if self.ctx.cfg.gradient_checkpointing:
            if not getattr(model, "supports_gradient_checkpointing", False):
                raise UserError(f"--gradient-checkpointing: {type(model).__name__} does not support it.")
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=settings.GRADIENT_CHECKPOINTING)
        return model

    def _train_loader(self, streamed: bool) -> Any:
        from torch.utils.data import DataLoader

        ctx, cfg = self.ctx, self.ctx.cfg
        features = ctx.model_inputs(ctx.train_features)
        sampler = None
        if cfg.group_by_length and not streamed:
            sampler = length_grouped_sampler(features, cfg.batch_size * cfg.gradient_accumulation_steps, cfg.seed)
        return DataLoader(
            features,
            shuffle=not streamed and sampler is None,
            sampler=sampler,
            batch_size=cfg.batch_size,
            collate_fn=self.collator,
            generator=loader_generator(cfg.seed),
        )

    def run(self, resume: bool, before: bool) -> dict[str, Any]:
        ctx, cfg, accelerator = self.ctx, self.ctx.cfg, self.accelerator
        metrics: dict[str, Any] = {}
        if cfg.eval_only:
            self.run_log.start(None)
            model, eval_loader = accelerator.prepare(ctx.model, self.eval_loader)
            metrics.update(self.evaluate(model, eval_loader))
            self.run_log.evaluation(0, None, metrics, training=False)
            return metrics
        streamed = not hasattr(ctx.train_features, "__len__")  # --streaming: an IterableDataset, shuffled already
        self.streamed = streamed
        train_loader = self._train_loader(streamed)
        model = self._prepare_model()
        optimizer = settings.optimizer(self.args, model)
        model, optimizer, train_loader, eval_loader = accelerator.prepare(
            model, optimizer, train_loader, self.eval_loader
        )
        self.eval_loader = eval_loader
        if streamed:  # the run needs --max-steps; each pass over the stream is an epoch
            total_steps, num_epochs = cfg.max_steps, sys.maxsize
        else:
            self.epoch_length = len(train_loader)
            total_steps = settings.total_steps(cfg, len(train_loader))
            num_epochs = math.ceil(total_steps / settings.steps_per_epoch(cfg, len(train_loader)))
        scheduler = optimization.scheduler(cfg, optimizer, total_steps)
        accelerator.register_for_checkpointing(scheduler)

        start_epoch, step, skip = 0, 0, 0
        found = checkpoints.latest_loop_checkpoint(ctx.output_dir) if resume else None
        if found is not None:
            accelerator.load_state(str(found[0]))
            start_epoch, step, skip = found[1]["epoch"], found[1]["step"], found[1].get("batches", 0)
            self.losses.record = RunRecord.load(found[0])
            self.epoch_position = start_epoch + skip / self.epoch_length
            say(checkpoints.resuming_line(found[0], step, self.epoch_position))
        self.run_log.start(step if found is not None else None)
        if self.trackers:
            try:
                accelerator.init_trackers(
                    trackers.accelerate_project(self.trackers), trackers.run_config(self.args, ctx.model),
                    trackers.accelerate_init_kwargs(self.trackers, trackers.run_name(ctx.output_dir)),
                )
            except Exception as err:  # noqa: BLE001  (whatever the trackers' libraries raise)
                raise trackers.could_not_start(self.trackers, err) from None
        if before:
            measure = lambda: self.evaluate(model, eval_loader)  # noqa: E731
            metrics.update(before_training(ctx.output_dir, found is not None, measure))
            if found is None:
                self.run_log.evaluation(0, 0.0, {k.removesuffix(BEFORE_SUFFIX): v for k, v in metrics.items()}, False)

        if step >= total_steps or self.record.should_stop:  # a resumed run that had already finished
            say(f"training is already complete ({step} of {total_steps} steps); evaluating and saving the model.")
            start_epoch = num_epochs
        self.run_log.progress.start(total_steps, step)
        started = time.perf_counter()
        self.interval = LogInterval(self.samples)
        interrupt.begin_training()
        try:
            for epoch in range(start_epoch, num_epochs):
                train_loader.set_epoch(epoch)
                if hasattr(self.collator, "set_epoch"):  # e.g. masks drawn per (epoch, batch): see MlmCollator
                    self.collator.set_epoch(epoch)
                loader = accelerator.skip_first_batches(train_loader, skip) if skip else train_loader
                step, batches = self._train_epoch(model, optimizer, scheduler, loader, epoch, skip, step, total_steps)
                skip = 0
                if streamed and batches == 0:
                    raise UserError("The training stream yields no batches.")
                if self.record.should_stop:
                    break
                # not finished: max_steps ended the run inside this epoch
                finished = step < total_steps if streamed else batches >= len(train_loader)
                if cfg.evaluation_strategy == "epoch":
                    self._evaluate_at(step, model, epoch + batches / self.epoch_length)
                if cfg.saving_strategy == "epoch":
                    position = {"epoch": epoch + 1, "batches": 0} if finished else {"epoch": epoch, "batches": batches}
                    self._save_checkpoint(model, {**position, "step": step})
                elif self.deferred_save is not None:  # the step checkpoint of the epoch's last step: a run killed
                    self._save_checkpoint(model, self.deferred_save)  # before it evaluates the epoch again
                    self.deferred_save = None
                if not streamed and batches >= len(train_loader):
                    self._stop_if_interrupted(model, {"epoch": epoch + 1, "batches": 0, "step": step},
                                              saved=cfg.saving_strategy != "steps" or step % cfg.saving_interval == 0
                                              or step >= total_steps)
                if step >= total_steps or self.record.should_stop:
                    break
        finally:
            self.run_log.progress.stop()
            if accelerator.is_main_process:
                checkpoints.remove_staging_root(ctx.output_dir)
        interrupt.end_training()
        self._record_throughput(time.perf_counter() - started)
        best = self.record.best_checkpoint(cfg, ctx.output_dir)
        if best is not None:
            accelerator.load_state(str(best))
        final_step = self.record.best_step if best is not None else step
        last = self.last_evaluation
        if last is not None and last[0] == final_step:
            metrics.update(last[1])
        else:
            metrics.update(self.evaluate(model, eval_loader))
            self.run_log.evaluation(step, None, metrics, training=False)
        self._save_model(model, step)
        self.losses.settle(accelerator)
        finish_training(ctx, self.losses, step, None if streamed else self.epoch_position, best is not None)
        if self.trackers:
            accelerator.end_training()
        if accelerator.is_main_process:
            checkpoints.remove_staging_root(ctx.output_dir)
        return metrics

    def _train_epoch(
        self, model: Any, optimizer: Any, scheduler: Any, loader: Any, epoch: int, skipped: int, step: int, total: int
    ) -> tuple[int, int]:
        """Train over `loader` (whose first `skipped` batches a resumed run already saw).

        Returns the optimizer step reached and the number of this epoch's batches done."""
        import torch

        accelerator, cfg = self.accelerator, self.ctx.cfg
        model.train()
        step_loss, grad_norm, step_lr, batches_done = None, None, 0.0, skipped
        for batches_done, batch in enumerate(loader, start=skipped + 1):
            self.tokens += optimization.batch_tokens(batch)
            self.samples += optimization.batch_samples(batch)
            with accelerator.accumulate(model):
                done = length_split.batch_loss(batch, self.splitting, lambda piece: self._mean_loss(model, piece))
                self.positions += done.positions
                self.batches_split += done.split
                loss = done.loss
                if any_process(accelerator, ~torch.isfinite(loss.detach()).all()):
                    raise non_finite_loss(step + 1, self.ctx.output_dir)  # before backward: weights untouched
                loss = loss * optimization.accumulation_scale(
                    batches_done, None if self.streamed else self.epoch_length, cfg.gradient_accumulation_steps)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                    grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                if accelerator.sync_gradients:
                    step_lr = scheduler.get_last_lr()[0]  # the rate this step used, as the Trainer logs it
                    scheduler.step()
                optimizer.zero_grad()
            share = loss.detach() / cfg.gradient_accumulation_steps  # this micro-batch's part of the step loss
            step_loss = share if step_loss is None else step_loss + share
            if not accelerator.sync_gradients:
                continue
            step += 1
            self.losses.add(step_loss)
            self.interval.add(step_loss)
            step_loss = None
            self.run_log.progress.update(step)
            epoch_position = self.epoch_position = epoch + batches_done / self.epoch_length
            if step % cfg.logging_steps == 0:
                self._log_training(step, epoch_position, step_lr, grad_norm)
            last = step >= total
            if cfg.evaluation_strategy == "steps" and (step % cfg.evaluation_interval == 0 or last):
                self._evaluate_at(step, model, epoch_position)
                model.train()
            position = {"epoch": epoch, "step": step, "batches": batches_done}
            epoch_end = not self.streamed and batches_done >= self.epoch_length
            if epoch_end:
                position = {"epoch": epoch + 1, "step": step, "batches": 0}
            saved = cfg.saving_strategy == "steps" and (step % cfg.saving_interval == 0 or last)
            if saved and (epoch_end or last) and cfg.evaluation_strategy == "epoch":
                self.deferred_save = position  # `run` saves it after the epoch's evaluation, which it then holds
            elif saved:
                self._save_checkpoint(model, position)
                model.train()
            if not epoch_end:  # at an epoch's end `run` stops, after the epoch's evaluation and checkpoint
                self._stop_if_interrupted(model, position, saved and self.deferred_save is None)
            if last or self.record.should_stop:
                break
        return step, batches_done

    def _stop_if_interrupted(self, model: Any, position: dict[str, int], saved: bool) -> None:
        """SIGTERM/SIGINT (runner/interrupt.py), agreed across processes at this step's end: save a checkpoint
        here (unless saving is off, or one was just saved) and stop."""
        signum = interrupt.agreed(self.accelerator)
        if signum is None:
            return
        saving = self.ctx.cfg.saving_strategy != "no"
        if saving and not saved:
            self._save_checkpoint(model, position)
        raise interrupt.stop(signum, position["step"], self.ctx.output_dir, saving)

    def _log_training(self, step: int, epoch: float, learning_rate: float, grad_norm: Any) -> None:
        """One logging interval: its mean step loss over processes, the learning rate, samples/s."""
        accelerator, interval = self.accelerator, self.interval
        mean_loss = float(accelerator.gather(interval.loss.reshape(1).double()).mean()) / interval.steps
        seconds = time.perf_counter() - interval.started
        rate = (self.samples - interval.samples) * accelerator.num_processes / seconds if seconds > 0 else None
        norm = float(grad_norm) if grad_norm is not None else None
        self.run_log.training(step, epoch, mean_loss, float(learning_rate), norm,
                              round(rate, 2) if rate is not None else None)
        self.interval = LogInterval(self.samples)

    def _evaluate_at(self, step: int, model: Any, epoch: float) -> None:
        metrics = self.evaluate(model, self.eval_loader)
        self.run_log.evaluation(step, epoch, metrics, training=True)
        self.record.observe(self.ctx.cfg, step, metrics)
        stop = self.ctx.after_evaluation(step, metrics)
        if stop is not None:  # the loops then end as after early stopping
            self.record.request_stop(step, stop.reason)
        self.last_evaluation = (step, metrics)

    def _mean_loss(self, model: Any, batch: dict[str, Any]) -> Any:
        """A batch's (or a piece's) mean training loss: the model's, or the task's own."""
        if self.loss_fn is None:
            return model(**batch).loss
        return self.loss_fn(model(**optimization.without_labels(batch)), batch)

    def _record_throughput(self, seconds: float) -> None:
        self.ctx.report.training.update(optimization.training_facts(self.accelerator, self, seconds))

    def _save_checkpoint(self, model: Any, position: dict[str, int]) -> None:
        """Save the training state as checkpoint-<step>; `position` says where in which epoch it stands."""
        if not weights_finite(self.accelerator, model):
            raise non_finite_loss(position["step"], self.ctx.output_dir)
        self.losses.settle(self.accelerator)
        loop_saving.save_checkpoint(self.accelerator, model, self.ctx, self.record, position)

    def _save_model(self, model: Any, step: int) -> None:
        if not weights_finite(self.accelerator, model):
            raise non_finite_loss(step, self.ctx.output_dir)
        if not replicas_agree(self.accelerator, model):
            raise unsynchronised_replicas(self.accelerator.num_processes)
        loop_saving.save_pretrained(self.accelerator, model, self.ctx.tokenizer, self.ctx.output_dir)

def run(ctx: RunContext, resume: bool, before: bool) -> dict[str, Any]:
    return AccelerateLoop(ctx).run(resume, before)
