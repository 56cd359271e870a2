"""--length-split: a training batch whose rows differ much in length runs as a few forward passes over rows of
similar length, each padded only to its own longest row, and their losses are combined into the batch's mean
loss before the one backward pass. The step is the same as the unsplit batch's (the same examples, the same
gradient up to float rounding, so the same quality as random batches); what is left out is the padding the
batch's longest row forced on the others.

A piece costs at least `min_positions` token positions (below that, a forward pass costs about the same however
small it is: kernel launches and Python), so short batches are never split. The pieces are a function of the
batch's lengths alone: a resumed run splits exactly as the uninterrupted one did. Both loops call `pieces`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# The smallest piece worth a forward pass of its own, measured on a 2-core CPU (benchmarks/README.md): the tiny
# presets (under 1M parameters) lose to splits below 512 positions, MiniLM (22M) gains most at 128-256.
CPU_MIN_POSITIONS = 1024
CPU_LARGE_MODEL_MIN_POSITIONS = 256
CPU_LARGE_MODEL = 10_000_000  # parameters
ACCELERATOR_MIN_POSITIONS = 4096  # a GPU's forward pass is launch-bound for longer: a guess, not measured here
UNSPLIT_ENGINES = ("FSDP", "DEEPSPEED", "MEGATRON_LM")  # engines that expect one forward pass per backward pass


@dataclass(frozen=True)
class Splitting:
    """How this run splits its training batches."""

    min_positions: int
    encoder_decoder: bool  # labels (and decoder inputs) have their own width: the targets'
    shifts_labels: bool  # causal LM: a row's first label is never a target
    multiple: int | None = None  # widths stay multiples of this (the collator's pad_to_multiple_of)


def min_positions(requested: int | None, on_accelerator: bool, parameters: int) -> int:
    """The option's value, or the default for the device and the model's size when it is not given; 0 turns
    splitting off."""
    if requested is not None:
        return requested
    if on_accelerator:
        return ACCELERATOR_MIN_POSITIONS
    return CPU_LARGE_MODEL_MIN_POSITIONS if parameters >= CPU_LARGE_MODEL else CPU_MIN_POSITIONS


def splitting(requested: int | None, on_accelerator: bool, model: Any, shifts_labels: bool, own_loss: bool,
              engine: str, multiple: int | None) -> Splitting | None:
    """The run's splitting, or None: turned off (0), a task computing its own loss (its normalisation is its
    own), or an engine that shards the model (FSDP, DeepSpeed: one forward pass per backward pass)."""
    floor = min_positions(requested, on_accelerator, sum(param.numel() for param in model.parameters()))
    if floor == 0 or own_loss or any(name in engine.upper() for name in UNSPLIT_ENGINES):
        return None
    config = getattr(model, "config", None)
    return Splitting(floor, bool(getattr(config, "is_encoder_decoder", False)), shifts_labels, multiple)


def plan(lengths: Sequence[int], target_lengths: Sequence[int], min_positions: int,
         multiple: int | None = None) -> list[list[int]] | None:
    """Groups of row indices, each sorted by length, that cost fewer positions than the whole batch (a group
    costs its rows x (its longest input + its longest target), at least `min_positions`); None when the whole
    batch costs least. Exact: dynamic programming over the rows sorted by length."""
    count = len(lengths)

    def width(value: int) -> int:
        return math.ceil(value / multiple) * multiple if multiple else value

    order = sorted(range(count), key=lambda row: (lengths[row], target_lengths[row]))
    # best[j]: the cheapest split of the first j rows by length, as (positions, groups): fewer groups on a tie
    best: list[tuple[float, int]] = [(0, 0)] + [(math.inf, 0)] * count
    start = [0] * (count + 1)  # where that split's last group starts
    for end in range(1, count + 1):
        longest = width(lengths[order[end - 1]])
        target = 0
        for begin in range(end - 1, -1, -1):
            target = max(target, width(target_lengths[order[begin]]))
            cost = (best[begin][0] + max(min_positions, (end - begin) * (longest + target)), best[begin][1] + 1)
            if cost < best[end]:
                best[end], start[end] = cost, begin
    whole = max(min_positions, count * (width(max(lengths)) + width(max(target_lengths))))
    if best[count][0] >= whole:
        return None
    groups, end = [], count
    while end > 0:
        groups.append(order[start[end]:end])
        end = start[end]
    return groups[::-1]


def pieces(batch: dict[str, Any], split: Splitting | None) -> list[tuple[dict[str, Any], float]]:
    """The batch as (piece, weight) pairs whose weighted mean losses add up to the batch's mean loss: the batch
    itself with weight 1 when it is not split (splitting off, short batches, left padding, entries other than
    tensors, float labels (multi-label classes), and labels other than `labels`: a question-answering head's
    loss over positions includes the padded ones, so it is not the same on a narrower piece)."""
    whole = [(batch, 1.0)]
    mask = batch.get("attention_mask")
    if split is None or mask is None or mask.dim() != 2 or mask.shape[0] < 2:
        return whole
    if not all(hasattr(value, "shape") for value in batch.values()) or not bool((mask.cumprod(1) == mask).all()):
        return whole  # something other than tensors, or padding on the left
    width = mask.shape[1]
    labels = batch.get("labels")
    if labels is None or labels.is_floating_point():
        # a loss over positions (answer spans) is taken over the padding too, and float labels are classes
        # per row (multi-label), whatever their number: neither is cut by width
        return whole
    token_labels = labels.dim() == 2
    if token_labels and not split.encoder_decoder and labels.shape[1] != width:
        return whole
    lengths = mask.sum(1)
    targets = _target_lengths(labels) if token_labels and split.encoder_decoder else lengths.new_zeros(len(lengths))
    groups = plan(lengths.tolist(), targets.tolist(), split.min_positions, split.multiple)
    if groups is None:
        return whole
    units = _loss_units(batch, labels if token_labels else None, split.shifts_labels)
    total = float(units.sum())
    if total <= 0:
        return whole
    result = []
    for rows in groups:
        index = mask.new_tensor(rows)
        keep = _width(int(lengths[index].max()), split.multiple, width)
        keep_target = _width(int(targets[index].max()), split.multiple, labels.shape[1]) if (
            token_labels and split.encoder_decoder) else None
        piece = {key: _rows(key, value, index, width, keep, keep_target) for key, value in batch.items()}
        result.append((piece, float(units[index].sum()) / total))
    return result


@dataclass(frozen=True)
class BatchLoss:
    loss: Any  # the batch's mean loss, with its graph
    positions: int  # token positions the forward passes computed on, padding included
    split: bool  # whether the batch ran as pieces


def batch_loss(batch: dict[str, Any], split: Splitting | None, loss_of: Callable[[dict[str, Any]], Any]) -> BatchLoss:
    """The batch's mean loss, `loss_of` (a piece's mean loss, with its graph) called once per piece."""
    parts = pieces(batch, split)
    if len(parts) == 1:
        return BatchLoss(loss_of(batch), int(batch["input_ids"].numel()), False)
    loss = sum(loss_of(piece) * weight for piece, weight in parts)
    return BatchLoss(loss, sum(int(piece["input_ids"].numel()) for piece, _ in parts), True)


def for_run(cfg: Any, accelerator: Any | None, model: Any, shifts_labels: bool, own_loss: bool) -> Splitting | None:
    """The splitting of a run with `cfg.length_split` on `accelerator`'s device and engine (None: one process on
    this machine's GPU if it has one, as `nlpcli inspect` builds a run)."""
    import torch

    from nlpcli.tasks.base import padding_multiple

    on_accelerator = accelerator.device.type != "cpu" if accelerator is not None else torch.cuda.is_available()
    engine = str(accelerator.distributed_type) if accelerator is not None else "NO"
    return splitting(cfg.length_split, on_accelerator, model, shifts_labels, own_loss, engine, padding_multiple())


def padding_after(batch: dict[str, Any], split: Splitting | None) -> tuple[int, float] | None:
    """(pieces, share of their positions that is padding) when `split` runs `batch` as pieces, else None."""
    parts = pieces(batch, split)
    if len(parts) == 1:
        return None
    positions = sum(int(piece["attention_mask"].numel()) for piece, _ in parts)
    return len(parts), 1 - int(batch["attention_mask"].sum()) / positions


def facts(split: Splitting | None, batches_split: int) -> dict[str, Any]:
    """run.json's record of it: the smallest piece, and how many training batches ran as pieces."""
    if split is None:
        return {"length_split": "off"}
    return {"length_split": {"min_positions": split.min_positions, "batches_split": batches_split}}


def _target_lengths(labels: Any) -> Any:
    """Per row, the position after its last labelled target (labels are -100 where padded)."""
    import torch

    positions = torch.arange(1, labels.shape[1] + 1, device=labels.device)
    return ((labels != -100) * positions).max(1).values


def _loss_units(batch: dict[str, Any], labels: Any | None, shifts_labels: bool) -> Any:
    """What a row counts for in the batch's mean loss: its labelled tokens (the first one not, for a causal LM,
    which scores position t against label t + 1), or 1 for a label per row (a class)."""
    if labels is None:
        return batch["attention_mask"].new_ones(batch["attention_mask"].shape[0])
    scored = labels[:, 1:] if shifts_labels else labels
    return (scored != -100).sum(1)


def _width(longest: int, multiple: int | None, limit: int) -> int:
    return min(limit, math.ceil(longest / multiple) * multiple if multiple else longest)


def _rows(key: str, value: Any, index: Any, width: int, keep: int, keep_target: int | None) -> Any:
    """A batch entry's rows of one piece, cut to the piece's width: the targets' width for labels and decoder
    inputs of an encoder-decoder model, the inputs' width for every other entry as wide as the inputs."""
    rows = value.index_select(0, index)
    if rows.dim() < 2:
        return rows
    if keep_target is not None and (key == "labels" or key.startswith("decoder_")):
        return rows[:, :keep_target].contiguous()  # models view labels flat
    return rows[:, :keep].contiguous() if rows.shape[1] == width else rows
