"""The `--loop trainer` path: drive the transformers Trainer from a Task."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

from nlpcli.console import say
from nlpcli.runner import checkpoints, optimization
from nlpcli.runner.context import RunContext
from nlpcli.runner.evaluation import before_training, evaluate_batches
from nlpcli.runner.guards import LossGuard, non_finite_loss, trainer_guard_callback, weights_finite
from nlpcli.runner.progress import TrainingProgress, trainer_callback


def training_arguments(ctx: RunContext) -> Any:
    import torch
    from transformers import TrainingArguments

    cfg = ctx.cfg
    return TrainingArguments(
        output_dir=str(ctx.output_dir),
        eval_strategy="no" if cfg.eval_only else "steps" if cfg.eval_steps else "epoch",
        eval_steps=cfg.eval_steps,
        save_strategy="no" if cfg.eval_only else "steps" if cfg.save_steps else "epoch",
        save_steps=cfg.save_steps or 500,
        save_total_limit=cfg.save_total_limit,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        warmup_steps=optimization.warmup(cfg),
        lr_scheduler_type=cfg.lr_scheduler,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.per_device_eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed,
        fp16=ctx.mixed_precision == "fp16",
        bf16=ctx.mixed_precision == "bf16",
        use_cpu=not torch.cuda.is_available(),
        logging_steps=cfg.logging_steps,
        report_to="none",
        remove_unused_columns=False,  # the runner drops them itself (RunContext.model_inputs), as for Accelerate
        average_tokens_across_devices=False,  # per-process mean loss, as the Accelerate loop (and DDP) do
        disable_tqdm=True,
        logging_nan_inf_filter=False,  # a NaN loss must show (and stop the run), not be averaged away
    )


def trainer_class(ctx: RunContext, guard: LossGuard | None = None) -> type:
    """A Trainer whose evaluation is the shared one (same numbers as the Accelerate loop, exact under DDP) and
    whose training losses feed the non-finite loss guard."""
    from transformers import Trainer
    from transformers.trainer_utils import EvalLoopOutput

    loss_fn = ctx.task.training_loss(ctx.cfg)
    guard = guard or LossGuard()

    class NlpcliTrainer(Trainer):
        # the task's loss is a per-batch mean, which training_step divides by the accumulation steps
        loss_is_scaled_for_ga = False if loss_fn is not None else None
        tokens = 0  # training tokens of this process (for tokens/s), counted as the Accelerate loop counts them

        def training_step(self, model, inputs, num_items_in_batch=None):
            self.tokens += optimization.batch_tokens(inputs)
            loss = super().training_step(model, inputs, num_items_in_batch)
            guard.observe(loss)
            return loss

        def _get_output_dir(self, trial):
            staging = getattr(self, "_staging_root", None)
            return str(staging) if staging is not None else super()._get_output_dir(trial)

        def _save_checkpoint(self, model, trial):
            """Write the checkpoint in a staging folder, then rename it into place: a crash mid-save leaves no
            half checkpoint under a checkpoint-N name."""
            final = ctx.output_dir / f"{checkpoints.PREFIX}{self.state.global_step}"
            self._staging_root = checkpoints.staging_folder(final)
            try:
                super()._save_checkpoint(model, trial)
            finally:
                self._staging_root = None
            self.accelerator.wait_for_everyone()  # every process has written its part (its RNG state)
            if self.args.should_save:
                shutil.rmtree(final, ignore_errors=True)
                (checkpoints.staging_folder(final) / final.name).rename(final)
                shutil.rmtree(checkpoints.staging_folder(final), ignore_errors=True)
                checkpoints.keep_newest(ctx.output_dir, self.args.save_total_limit)
                ctx.checkpoint_saved(final)
            self.accelerator.wait_for_everyone()

        def get_decay_parameter_names(self, model):
            return optimization.decay_parameter_names(model)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if loss_fn is None or not model.training:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            outputs = model(**optimization.without_labels(inputs))
            loss = loss_fn(outputs, inputs)
            return (loss, outputs) if return_outputs else loss

        def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                            metric_key_prefix="eval"):
            model = self.model_wrapped if self.is_in_train else self.accelerator.prepare_model(
                self.model, evaluation_mode=True
            )
            metrics = evaluate_batches(self.accelerator, model, dataloader, ctx)
            metrics = {f"{metric_key_prefix}_{k.removeprefix('eval_')}": v for k, v in metrics.items()}
            return EvalLoopOutput(predictions=None, label_ids=None, metrics=metrics, num_samples=len(ctx.eval_features))

    return NlpcliTrainer


def save_at_epoch_end() -> Any:
    """With --save-steps the Trainer saves on steps only; this keeps the end-of-epoch checkpoint too."""
    from transformers import TrainerCallback

    class SaveAtEpochEnd(TrainerCallback):
        def on_epoch_end(self, args, state, control, **kwargs):
            control.should_save = True
            return control

    return SaveAtEpochEnd()


def collator_epochs(collator: Any) -> Any:
    """Tells a collator that has `set_epoch` (as the Accelerate loop does) which epoch starts."""
    from transformers import TrainerCallback

    class CollatorEpoch(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            collator.set_epoch(math.floor(state.epoch + 1e-9))  # a resumed epoch starts part-way: 1.4 -> 1

    return CollatorEpoch()


def build_trainer(ctx: RunContext, guard: LossGuard) -> tuple[Any, TrainingProgress]:
    from transformers import PrinterCallback

    task = ctx.task
    progress = TrainingProgress()
    collator = task.collator(ctx.tokenizer, ctx.model, ctx.cfg)
    trainer = trainer_class(ctx, guard)(
        model=ctx.model,
        args=training_arguments(ctx),
        train_dataset=ctx.model_inputs(ctx.train_features) if ctx.train_features is not None else None,
        eval_dataset=ctx.model_inputs(ctx.eval_features),
        processing_class=ctx.tokenizer,
        data_collator=collator,
    )
    if hasattr(collator, "set_epoch"):
        trainer.add_callback(collator_epochs(collator))
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(trainer_callback(progress))
    if ctx.cfg.save_steps:
        trainer.add_callback(save_at_epoch_end())
    guard.accelerator = trainer.accelerator
    trainer.add_callback(trainer_guard_callback(guard))  # last: it overrides the others' save/evaluate
    return trainer, progress


def planned_steps(trainer: Any, cfg: Any) -> int:
    """The optimizer steps this configuration trains in all: --max-steps, or its epochs' worth."""
    if cfg.max_steps > 0:
        return cfg.max_steps
    batches = len(trainer.get_train_dataloader())
    return math.ceil(cfg.epochs * max(1, math.ceil(batches / cfg.gradient_accumulation_steps)))


def finished_in(checkpoint: Path, trainer: Any, cfg: Any) -> bool:
    """True when `checkpoint` already holds all the training `cfg` asks for."""
    done = json.loads((checkpoint / "trainer_state.json").read_text()).get("global_step", 0)
    return done >= planned_steps(trainer, cfg)


def run(ctx: RunContext, resume: bool, before: bool) -> dict[str, Any]:
    """Train (unless eval-only), save the model, and return the final evaluation metrics."""
    import torch
    from transformers import TrainerState

    guard = LossGuard()
    trainer, progress = build_trainer(ctx, guard)
    metrics: dict[str, Any] = {}
    if before:
        metrics.update(before_training(ctx.output_dir, resume, trainer.evaluate))
    if ctx.cfg.eval_only:
        metrics.update(trainer.evaluate())
        return metrics
    started = time.perf_counter()
    try:
        latest = checkpoints.latest_complete(ctx.output_dir) if resume else None
        if latest is not None and finished_in(latest, trainer, ctx.cfg):
            # the Trainer would take one step past the end; load the last weights and finish the run instead
            say(f"training is already complete ({latest.name}); evaluating and saving the model.")
            trainer._load_from_checkpoint(str(latest))
            trainer.state = TrainerState.load_from_json(str(latest / "trainer_state.json"))
        else:
            trainer.train(resume_from_checkpoint=str(latest) if latest is not None else None)
    finally:
        progress.stop()
    if guard.stopped_at is not None or not weights_finite(trainer.accelerator, trainer.model):
        raise non_finite_loss(trainer.state.global_step if guard.stopped_at is None else guard.stopped_at,
                              ctx.output_dir)
    tokens = trainer.accelerator.gather(torch.tensor([trainer.tokens], device=trainer.args.device)).sum()
    ctx.training.update(optimization.throughput(int(tokens), time.perf_counter() - started))
    trainer.save_model(str(ctx.output_dir))
    history = trainer.state.log_history
    last_eval = next((log for log in reversed(history) if any(k.startswith("eval_") for k in log)), None)
    if last_eval is not None and last_eval.get("step") == trainer.state.global_step:
        metrics.update(last_eval)
    else:
        metrics.update(trainer.evaluate())
    return metrics
