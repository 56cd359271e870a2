"""The `--loop trainer` path: drive the transformers Trainer from a Task."""

from __future__ import annotations

from typing import Any

from nlpcli.runner.context import RunContext
from nlpcli.runner.evaluation import derived_metrics
from nlpcli.runner.progress import TrainingProgress, trainer_callback


def training_arguments(ctx: RunContext) -> Any:
    import torch
    from transformers import TrainingArguments

    cfg = ctx.cfg
    return TrainingArguments(
        output_dir=str(ctx.output_dir),
        eval_strategy="no" if cfg.eval_only else "epoch",
        save_strategy="no" if cfg.eval_only else "epoch",
        save_total_limit=cfg.save_total_limit,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type="linear",
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.per_device_eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        seed=cfg.seed,
        fp16=ctx.mixed_precision == "fp16",
        bf16=ctx.mixed_precision == "bf16",
        use_cpu=not torch.cuda.is_available(),
        logging_steps=cfg.logging_steps,
        report_to="none",
        disable_tqdm=True,
    )


def build_trainer(ctx: RunContext) -> tuple[Any, TrainingProgress]:
    from transformers import PrinterCallback, Trainer

    task = ctx.task
    compute_metrics = None
    if task.evaluation == "logits":
        def compute_metrics(prediction: Any) -> dict[str, float]:
            return task.compute_metrics(prediction.predictions, ctx.eval_features, ctx.raw_eval)

    progress = TrainingProgress()
    trainer = Trainer(
        model=ctx.model,
        args=training_arguments(ctx),
        train_dataset=ctx.train_features,
        eval_dataset=ctx.eval_features,
        processing_class=ctx.tokenizer,
        data_collator=task.collator(ctx.tokenizer, ctx.model, ctx.cfg),
        compute_metrics=compute_metrics,
    )
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(trainer_callback(progress, lambda m: derived_metrics(task, m)))
    return trainer, progress


def evaluate(trainer: Any, ctx: RunContext) -> dict[str, Any]:
    metrics = trainer.evaluate()
    metrics.update(derived_metrics(ctx.task, metrics))
    return metrics


def run(ctx: RunContext, resume_from: str | None, before: bool) -> dict[str, Any]:
    """Train (unless eval-only), save the model, and return the final evaluation metrics."""
    trainer, progress = build_trainer(ctx)
    metrics: dict[str, Any] = {}
    if before:
        metrics.update({f"{k}_before": v for k, v in evaluate(trainer, ctx).items()})
    if ctx.cfg.eval_only:
        metrics.update(evaluate(trainer, ctx))
        return metrics
    try:
        trainer.train(resume_from_checkpoint=resume_from)
    finally:
        progress.stop()
    trainer.save_model(str(ctx.output_dir))
    history = trainer.state.log_history
    last_eval = next((log for log in reversed(history) if any(k.startswith("eval_") for k in log)), None)
    if last_eval is not None and last_eval.get("step") == trainer.state.global_step:
        metrics.update(last_eval)
        metrics.update(derived_metrics(ctx.task, last_eval))
    else:
        metrics.update(evaluate(trainer, ctx))
    return metrics
