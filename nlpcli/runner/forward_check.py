"""The forward-pass check of `nlpcli inspect`: one forward pass of the first batch, without gradients, on the GPU
when there is one (else the CPU), as the loops call the model (`model(**batch)`, and the task's own training loss
when it has one).

Its loss is set against what a constant predictor would get on the same batch (the task's `baseline_loss`): a
loss that is not finite, or far above that (more than FAR_FACTOR x baseline + FAR_MARGIN nats), is a problem.
Label ids beyond the model's output are found before the call (on a GPU they would end in a device-side assert
that leaves the device unusable), and an exception of the call is reported as a problem in one readable line.
"""

from __future__ import annotations

import math
from typing import Any

from nlpcli.runner.checks import OK, PROBLEM, Check
from nlpcli.tasks.base import Prepared, Task
from nlpcli.tasks.examples import IGNORE

FAR_FACTOR, FAR_MARGIN = 3.0, 1.0  # a loss above FAR_FACTOR x baseline + FAR_MARGIN is "far above" the baseline
# what an id beyond one of the model's tables (labels, vocabulary, positions) makes torch say
INDEX_ERRORS = ("out of bounds", "index out of range", "device-side assert", "indexSelect", "IndexError",
                "expanded size of the tensor")


def far_above(baseline: float) -> float:
    return FAR_FACTOR * baseline + FAR_MARGIN


def output_size(model: Any) -> int | None:
    """How many classes the model's output scores per position: its LM head's rows, else config.num_labels."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    weight = getattr(head, "weight", None)
    if weight is not None:
        return int(weight.shape[0])
    labels = getattr(model.config, "num_labels", None)
    return int(labels) if labels else None


def label_range_problem(batch: dict[str, Any], model: Any) -> str | None:
    """Why the batch's labels cannot be scored by the model's output (ids below 0 other than -100, or at or above
    its number of classes), or None."""
    labels = batch.get("labels")
    if labels is None or labels.is_floating_point():
        return None
    scored = labels[labels != IGNORE]
    classes = output_size(model)
    if scored.numel() == 0 or classes is None:
        return None
    low, high = int(scored.min()), int(scored.max())
    if low >= 0 and high < classes:
        return None
    return (f"label ids run from {low} to {high}, and the model scores {classes} classes (ids 0 to {classes - 1}; "
            f"-100 is not scored): a label id beyond the model's output ends the first step with an index error "
            "(on a GPU a device-side assert). The model was built with fewer labels than the data has: check its "
            "num_labels (config.json) against the label list.")


def explain(err: BaseException) -> str:
    """One line for an exception of the forward pass, with what it usually means."""
    text = (str(err).strip().splitlines() or [""])[0][:300]
    said = f"{type(err).__name__}: {text}" if text else type(err).__name__
    if any(marker in said for marker in INDEX_ERRORS):
        return (f"{said}. An id is beyond one of the model's tables: a label id at or above its number of labels, "
                "a token id beyond its vocabulary, or an input longer than its positions (see the model check).")
    if isinstance(err, TypeError) and "argument" in text:
        return f"{said}. The batch holds a key the model's forward() does not take (see the signature check)."
    return f"{said}."


def forward_check(task: Task, model: Any, batch: dict[str, Any], prepared: Prepared) -> Check:
    """One forward pass of `batch`: its loss against the constant predictor's, or why it could not run."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    baseline = task.baseline_loss(batch, model.config)
    details: dict[str, Any] = {"device": device}
    if baseline is not None:
        details["baseline"] = {"loss": round(baseline.loss, 4), "how": baseline.how,
                               "far above": round(far_above(baseline.loss), 4)}
    refused = label_range_problem(batch, model)
    if refused:
        return Check("forward", PROBLEM, "not run: label ids beyond the model's output", details, [refused])
    model.to(device).eval()
    on_device = {key: value.to(device) if hasattr(value, "to") else value for key, value in batch.items()}
    try:
        with torch.no_grad():
            outputs = model(**on_device)
            trained = prepared.training_loss(outputs, on_device) if prepared.training_loss is not None else None
    except Exception as err:  # noqa: BLE001  (any failure of the call is the finding, said in one line)
        return Check("forward", PROBLEM, f"the forward pass failed ({type(err).__name__})", details, [explain(err)])
    loss = getattr(outputs, "loss", None)
    if loss is None:
        return Check("forward", PROBLEM, "the model computed no loss", details, [
            "the batch holds no labels that the model's forward() reads, so training would have no loss."])
    value = float(loss)
    details["loss"] = round(value, 4) if math.isfinite(value) else str(value)
    if trained is not None:
        details["training loss (the task's own)"] = round(float(trained), 4)
    if not math.isfinite(value):
        return Check("forward", PROBLEM, f"loss {value}", details, [
            "the loss is not finite before any training: look for inputs the model cannot take (empty targets, "
            "ids beyond its tables) or weights that are already broken."])
    if baseline is None:
        return Check("forward", OK, f"loss {value:.4f}", details)
    summary = f"loss {value:.4f}, constant predictor {baseline.loss:.4f}"
    if value > far_above(baseline.loss):
        return Check("forward", PROBLEM, summary + " (far above)", details, [
            f"the loss is more than {FAR_FACTOR:g} x the constant predictor's + {FAR_MARGIN:g} "
            f"({far_above(baseline.loss):.4f}): the labels may not match the inputs (shifted, wrong ids or "
            "vocabulary), or the weights are broken."])
    return Check("forward", OK, summary, details)
