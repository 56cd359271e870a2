"""The evaluation both loops share: exact loss over the eval set, gathered logits, metric naming."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nlpcli import layout
from nlpcli.console import is_main_process
from nlpcli.files import write_text_atomic
from nlpcli.metrics.kinds import BEFORE_SUFFIX, metric_kind
from nlpcli.metrics.losses import per_sample_correct, per_sample_loss
from nlpcli.runner.generation import evaluate_generation
from nlpcli.runner.optimization import without_labels
from nlpcli.tasks.base import Task


def derived_metrics(task: Task, metrics: dict[str, Any]) -> dict[str, float]:
    """Metrics computed from others: perplexity for loss-based tasks."""
    if task.evaluation == "loss" and "eval_loss" in metrics:
        loss = float(metrics["eval_loss"])
        return {"eval_perplexity": math.exp(loss) if loss < 700 else float("inf")}
    return {}


def final_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The keys metrics.json keeps: the same whichever loop ran (evaluation metrics and the mean training loss;
    no timings, no epoch counter). A value that
    is not finite becomes null: bare NaN / Infinity are not JSON, and most readers reject them."""
    kinds = {k: metric_kind(k) for k in metrics}
    return {
        k: v if not isinstance(v, float) or math.isfinite(v) else None for k, v in metrics.items()
        if (kinds[k].split is not None and not kinds[k].timing) or k == "train_loss"
    }


def before_training(output_dir: Path, resumed: bool, evaluate: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The evaluation before training (--eval-before), as `*_before` keys: computed by `evaluate` and kept in
    metrics_before.json (its predictions as eval_predictions_before.jsonl). A run `resumed` from a checkpoint
    reads them back instead, and measures nothing when there are none (its run had --no-eval-before): the
    checkpoint is not the model before training."""
    kept = output_dir / layout.METRICS_BEFORE
    if resumed:
        return json.loads(kept.read_text()) if kept.is_file() else {}
    metrics = {f"{k}{BEFORE_SUFFIX}": v for k, v in evaluate().items()}
    if is_main_process():
        output_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(kept, json.dumps(final_metrics(metrics), indent=2, allow_nan=False))
        for name, before in layout.BEFORE_TRAINING.items():
            if (output_dir / name).is_file():
                (output_dir / name).replace(output_dir / before)
    return metrics


def prefixed(metrics: dict[str, Any], prefix: str = "eval_") -> dict[str, Any]:
    return {k if k.startswith(prefix) else prefix + k: v for k, v in metrics.items()}


def concat_padded(batches: list[np.ndarray], pad_value: float = -100) -> np.ndarray:
    """Concatenate per-batch arrays along axis 0, padding axis 1 to the longest (variable lengths)."""
    if batches[0].ndim < 2:
        return np.concatenate(batches)
    width = max(b.shape[1] for b in batches)
    padded = []
    for b in batches:
        pad = [(0, 0)] * b.ndim
        pad[1] = (0, width - b.shape[1])
        padded.append(np.pad(b, pad, constant_values=pad_value))
    return np.concatenate(padded)


def loss_rows(rows: list[list[float]], with_correct: bool) -> list[dict[str, Any]]:
    """The rows of a loss-based evaluation, one per eval example in data order: the summed cross-entropy of
    its labelled tokens, their number (and how many were predicted right), from which eval_loss
    (sum / tokens), eval_perplexity and eval_accuracy recompute."""
    out = []
    for index, row in enumerate(rows):
        entry = {"index": index, "loss_sum": row[0], "tokens": int(row[1])}
        if with_correct:
            entry["correct"] = int(row[2])
        out.append(entry)
    return out


def evaluate_batches(accelerator: Any, model: Any, loader: Any, ctx: Any) -> dict:
    """The one evaluation both loops run: loss from labels, gathered logits -> task metrics, or generated
    text -> task metrics (`runner.generation`).

    `gather_for_metrics` drops the samples that even batching duplicates on the last step, so every
    sample counts once with 1 or N processes.
    """
    import time

    import torch

    started = time.perf_counter()
    task = ctx.task
    model.eval()
    sample_losses, outputs = [], []
    # the loss comes from the logits per sample (below): the model's own loss over the batch would be computed
    # for nothing, except where an encoder-decoder model makes its decoder's inputs from the labels
    config = getattr(ctx.model, "config", None)
    labels_needed = bool(getattr(config, "is_encoder_decoder", False))
    for batch in loader:
        inputs = batch if labels_needed and "decoder_input_ids" not in batch else without_labels(batch)
        with torch.no_grad():
            result = model(**inputs)
        logits = result.get("logits")
        if "labels" in batch and logits is not None:
            columns = list(per_sample_loss(logits, batch["labels"], task.shifts_labels))
            if task.token_accuracy:
                columns.append(per_sample_correct(logits, batch["labels"], task.shifts_labels))
            # kept as Python numbers: a small tensor kept per batch would pin the allocator's heap between the
            # batches' large logits, and the process's memory would grow with the evaluation set
            sample_losses.extend(accelerator.gather_for_metrics(torch.stack(columns, dim=1).double()).tolist())
        if task.evaluation == "logits":
            gathered_outputs = []
            for key, tensor in result.items():
                if key == "loss":
                    continue
                if tensor.ndim >= 2:
                    tensor = accelerator.pad_across_processes(tensor, dim=1, pad_index=-100)
                gathered_outputs.append(accelerator.gather_for_metrics(tensor).float().cpu().numpy())
            outputs.append(gathered_outputs)
    metrics: dict[str, Any] = {}
    if sample_losses:
        per_sample = torch.tensor(sample_losses, dtype=torch.float64)
        totals = per_sample.sum(dim=0)  # summed in data set order: same for any process count
        if task.evaluation == "loss" and accelerator.is_main_process:
            ctx.write_rows(loss_rows(per_sample.tolist(), task.token_accuracy))
        metrics["eval_loss"] = float(totals[0] / totals[1]) if totals[1] else float("nan")
        if task.token_accuracy:
            metrics["eval_accuracy"] = float(totals[2] / totals[1]) if totals[1] else float("nan")
    if outputs:
        per_output = [concat_padded([batch[i] for batch in outputs]) for i in range(len(outputs[0]))]
        predictions = per_output[0] if len(per_output) == 1 else tuple(per_output)
        rows = ctx.prepared.prediction_rows(predictions, ctx.eval_features, ctx.raw_eval)
        if accelerator.is_main_process:  # one row per eval example, in data order; the metrics recompute from it
            ctx.write_rows(rows)
        if not ctx.unlabelled:  # an unlabelled test set's placeholder references score nothing
            metrics.update(prefixed(ctx.prepared.score_rows(rows)))
    if task.evaluation == "generation":
        metrics.update(prefixed(evaluate_generation(accelerator, model, ctx)))
    metrics.update(derived_metrics(task, metrics))
    ctx.report.evaluation = {"examples": len(ctx.raw_eval), "seconds": round(time.perf_counter() - started, 3)}
    return metrics
