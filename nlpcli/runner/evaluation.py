"""Evaluation pieces both loops share: metric naming, perplexity, padding gathered logits."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nlpcli.tasks.base import Task

TIMING_KEYS = ("_runtime", "_samples_per_second", "_steps_per_second")


def derived_metrics(task: Task, metrics: dict[str, Any]) -> dict[str, float]:
    """Metrics computed from others: perplexity for loss-based tasks."""
    if task.evaluation == "loss" and "eval_loss" in metrics:
        loss = float(metrics["eval_loss"])
        return {"eval_perplexity": math.exp(loss) if loss < 700 else float("inf")}
    return {}


def final_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The keys metrics.json keeps: the same whichever loop ran (no timings, no epoch counter)."""
    return {
        k: v for k, v in metrics.items() if k.startswith("eval_") and not k.endswith(TIMING_KEYS)
    }


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
