"""Per-sample losses from logits and labels: what the shared evaluation sums and what a task's training loss
(e.g. clm's key-token weighting) weighs. Below both the runner and the tasks; torch is imported when called."""

from __future__ import annotations

from typing import Any


def per_sample_loss(logits: Any, labels: Any, shift: bool) -> tuple[Any, Any]:
    """(summed cross-entropy, labelled-token count) per sample, so the eval loss is the same whatever the
    batch size or number of processes (a batch mean would mix in the samples DDP duplicates).

    Float labels of the logits' shape are multi-label targets (0/1 per class): the summed binary cross-entropy
    of a sample's classes and their count, so the eval loss is the mean over every class of every sample, what
    `BCEWithLogitsLoss` (the models' multi_label_classification loss) gives."""
    import torch.nn.functional as F

    if labels.is_floating_point() and labels.shape == logits.shape:  # multi-label classification
        losses = F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")
        return losses.sum(dim=1), labels.new_full((labels.shape[0],), labels.shape[1]).long()
    if labels.ndim == 1:  # one label per sample (sequence classification)
        losses = F.cross_entropy(logits.float(), labels, ignore_index=-100, reduction="none")
        return losses, (labels != -100).long()
    if shift:  # causal LM: token t predicts token t + 1
        logits, labels = logits[:, :-1], labels[:, 1:]
    rows, positions = labels.shape
    # rows of classes, as the models' own loss takes them (a class axis in the middle is several times slower)
    losses = F.cross_entropy(logits.reshape(rows * positions, -1).float(), labels.reshape(-1), ignore_index=-100,
                             reduction="none").view(rows, positions)
    mask = labels != -100
    return (losses * mask).sum(dim=1), mask.sum(dim=1)


def per_sample_correct(logits: Any, labels: Any, shift: bool) -> Any:
    """Labelled tokens whose arg-max prediction is the label, per sample (next-token accuracy when shifted)."""
    if shift:
        logits, labels = logits[:, :-1], labels[:, 1:]
    return ((logits.argmax(dim=-1) == labels) & (labels != -100)).sum(dim=1)
