"""The `--loop accelerate` path: a plain training loop on Accelerate, same Task, same outputs.

AdamW with weight decay (not on biases and LayerNorm weights), the configured warm-up and schedule,
the task's training loss when it has one, evaluation each epoch (or every --eval-steps) with
`pad_across_processes` + `gather_for_metrics` (no sample counted twice when the eval set does not
divide evenly), a checkpoint each epoch, and the final model saved once from the main process.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from nlpcli.console import say
from nlpcli.errors import UserError
from nlpcli.runner import checkpoints, optimization
from nlpcli.runner.context import RunContext
from nlpcli.runner.evaluation import before_training, evaluate_batches
from nlpcli.runner.guards import any_process, non_finite_loss, weights_finite
from nlpcli.runner.progress import TrainingProgress


def optimizer_for(model: Any, learning_rate: float, weight_decay: float) -> Any:
    import torch

    return torch.optim.AdamW(optimization.parameter_groups(model, weight_decay), lr=learning_rate)


def loader_generator(seed: int) -> Any:
    """A DataLoader's own generator: starting an iterator (each epoch, each evaluation, a resumed epoch) then
    draws its base seed from it, not from torch's global generator, whose state dropout uses and checkpoints
    restore. Without it a resumed run's dropout masks drift from the uninterrupted run's."""
    import torch

    return torch.Generator().manual_seed(seed)


def latest_checkpoint(output_dir: Path) -> tuple[Path, dict] | None:
    """The newest complete checkpoint and where in training it stands."""
    path = checkpoints.latest_complete(output_dir)
    state = path / "nlpcli_state.json" if path is not None else None
    return (path, json.loads(state.read_text())) if state is not None and state.is_file() else None


class AccelerateLoop:
    def __init__(self, ctx: RunContext) -> None:
        import torch
        from accelerate import Accelerator, DataLoaderConfiguration
        from torch.utils.data import DataLoader

        self.ctx = ctx
        cfg = ctx.cfg
        self.accelerator = Accelerator(
            mixed_precision=ctx.mixed_precision,
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            cpu=not torch.cuda.is_available(),
            # seeded per-epoch shuffles: a run resumed mid-epoch sees the batches it had not seen yet
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        )
        self.collator = ctx.task.collator(ctx.tokenizer, ctx.model, cfg)
        self.eval_loader = DataLoader(
            ctx.model_inputs(ctx.eval_features),
            batch_size=cfg.per_device_eval_batch_size,
            collate_fn=self.collator,
            generator=loader_generator(cfg.seed),
        )
        self.progress = TrainingProgress()
        self.loss_fn = ctx.task.training_loss(cfg)
        self.last_evaluation: tuple[int, dict[str, Any]] | None = None  # (step, metrics) of the latest one
        self.tokens = 0  # training tokens of this process, this session

    def evaluate(self, model: Any, eval_loader: Any) -> dict[str, Any]:
        return evaluate_batches(self.accelerator, model, eval_loader, self.ctx)

    def run(self, resume: bool, before: bool) -> dict[str, Any]:
        ctx, cfg, accelerator = self.ctx, self.ctx.cfg, self.accelerator
        metrics: dict[str, Any] = {}
        if cfg.eval_only:
            model, eval_loader = accelerator.prepare(ctx.model, self.eval_loader)
            metrics.update(self.evaluate(model, eval_loader))
            self.progress.log_evaluation("evaluation", metrics)
            return metrics
        from torch.utils.data import DataLoader

        streamed = not hasattr(ctx.train_features, "__len__")  # --streaming: an IterableDataset, shuffled already
        train_loader = DataLoader(
            ctx.model_inputs(ctx.train_features),
            shuffle=not streamed,
            batch_size=cfg.batch_size,
            collate_fn=self.collator,
            generator=loader_generator(cfg.seed),
        )
        optimizer = optimizer_for(ctx.model, cfg.learning_rate, cfg.weight_decay)
        model, optimizer, train_loader, eval_loader = accelerator.prepare(
            ctx.model, optimizer, train_loader, self.eval_loader
        )
        self.eval_loader = eval_loader
        if streamed:  # the run needs --max-steps; each pass over the stream is an epoch
            total_steps, num_epochs = cfg.max_steps, sys.maxsize
        else:
            steps_per_epoch = max(1, math.ceil(len(train_loader) / cfg.gradient_accumulation_steps))
            total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(cfg.epochs * steps_per_epoch)
            num_epochs = math.ceil(total_steps / steps_per_epoch)
        scheduler = optimization.scheduler(cfg, optimizer, total_steps)
        accelerator.register_for_checkpointing(scheduler)

        start_epoch, step, skip = 0, 0, 0
        if resume:
            found = latest_checkpoint(ctx.output_dir)
            if found is not None:
                accelerator.load_state(str(found[0]))
                start_epoch, step, skip = found[1]["epoch"], found[1]["step"], found[1].get("batches", 0)
        if before:
            metrics.update(before_training(ctx.output_dir, resume, lambda: self.evaluate(model, eval_loader)))
            self.progress.log_evaluation("before training", metrics)

        if step >= total_steps:  # a resumed run that had already finished: no step beyond its end
            say(f"training is already complete ({step} of {total_steps} steps); evaluating and saving the model.")
            start_epoch = num_epochs
        self.progress.start(total_steps, step)
        started = time.perf_counter()
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
                if not cfg.eval_steps:
                    self._evaluate_at(step, model, f"epoch {epoch + 1}")
                # not finished: max_steps ended the run inside this epoch
                finished = step < total_steps if streamed else batches >= len(train_loader)
                position = {"epoch": epoch + 1, "batches": 0} if finished else {"epoch": epoch, "batches": batches}
                self._save_checkpoint(model, {**position, "step": step})
                if step >= total_steps:
                    break
        finally:
            self.progress.stop()
        self._record_throughput(time.perf_counter() - started)
        last = self.last_evaluation
        metrics.update(last[1] if last is not None and last[0] == step else self.evaluate(model, eval_loader))
        self._save_model(model, step)
        return metrics

    def _train_epoch(
        self, model: Any, optimizer: Any, scheduler: Any, loader: Any, epoch: int, skipped: int, step: int, total: int
    ) -> tuple[int, int]:
        """Train over `loader` (whose first `skipped` batches a resumed run already saw).

        Returns the optimizer step reached and the number of this epoch's batches done."""
        import torch

        accelerator, cfg = self.accelerator, self.ctx.cfg
        model.train()
        running, count, batches_done = 0.0, 0, skipped
        for batches_done, batch in enumerate(loader, start=skipped + 1):
            self.tokens += optimization.batch_tokens(batch)
            with accelerator.accumulate(model):
                if self.loss_fn is None:
                    loss = model(**batch).loss
                else:
                    loss = self.loss_fn(model(**optimization.without_labels(batch)), batch)
                if any_process(accelerator, ~torch.isfinite(loss.detach()).all()):
                    raise non_finite_loss(step + 1, self.ctx.output_dir)  # before backward: weights untouched
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                if accelerator.sync_gradients:
                    scheduler.step()
                optimizer.zero_grad()
            running, count = running + float(loss.detach()), count + 1
            if accelerator.sync_gradients:
                step += 1
                shown = running / count if step % cfg.logging_steps == 0 or step == 1 else None
                self.progress.update(step, shown)
                if shown is not None:
                    running, count = 0.0, 0
                if cfg.eval_steps and step % cfg.eval_steps == 0:
                    self._evaluate_at(step, model, f"step {step}")
                    model.train()
                if cfg.save_steps and step % cfg.save_steps == 0 and step < total:
                    self._save_checkpoint(model, {"epoch": epoch, "step": step, "batches": batches_done})
                    model.train()
                if step >= total:
                    break
        return step, batches_done

    def _evaluate_at(self, step: int, model: Any, label: str) -> None:
        metrics = self.evaluate(model, self.eval_loader)
        self.progress.log_evaluation(label, metrics)
        self.last_evaluation = (step, metrics)

    def _record_throughput(self, seconds: float) -> None:
        import torch

        tokens = self.accelerator.gather(torch.tensor([self.tokens], device=self.accelerator.device)).sum()
        self.ctx.training.update(optimization.throughput(int(tokens), seconds))

    def _save_checkpoint(self, model: Any, position: dict[str, int]) -> None:
        """Save the training state as checkpoint-<step>; `position` says where in which epoch it stands."""
        accelerator, output_dir = self.accelerator, self.ctx.output_dir
        if not weights_finite(accelerator, model):
            raise non_finite_loss(position["step"], output_dir)
        path = output_dir / f"{checkpoints.PREFIX}{position['step']}"
        staging = checkpoints.staging_folder(path)
        if accelerator.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(staging))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:  # complete, then in place in one rename: never half a checkpoint
            (staging / "nlpcli_state.json").write_text(json.dumps(position))
            shutil.rmtree(path, ignore_errors=True)
            staging.rename(path)
            checkpoints.keep_newest(output_dir, self.ctx.cfg.save_total_limit)
            self.ctx.checkpoint_saved(path)
        accelerator.wait_for_everyone()

    def _save_model(self, model: Any, step: int) -> None:
        accelerator = self.accelerator
        if not weights_finite(accelerator, model):
            raise non_finite_loss(step, self.ctx.output_dir)
        accelerator.wait_for_everyone()
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.save_pretrained(
            str(self.ctx.output_dir), is_main_process=accelerator.is_main_process, save_function=accelerator.save
        )
        if accelerator.is_main_process:
            self.ctx.tokenizer.save_pretrained(str(self.ctx.output_dir))
        accelerator.wait_for_everyone()


def run(ctx: RunContext, resume: bool, before: bool) -> dict[str, Any]:
    return AccelerateLoop(ctx).run(resume, before)
