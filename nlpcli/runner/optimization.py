"""What both loops share about optimisation: weight-decay groups, warm-up, the learning-rate schedule,
the task's training loss and the count of training tokens.

The Trainer loop hands these to `TrainingArguments` / `Trainer` hooks, the Accelerate loop uses them
directly, so the two loops train the same way.
"""

from __future__ import annotations

import math
from typing import Any

from nlpcli.config import RunConfig

# Parameter names that are never decayed, besides every parameter of a LayerNorm module (transformers'
# own rule, `Trainer.get_decay_parameter_names`): biases and the norm layers other libraries name so.
NO_DECAY_NAME_PATTERNS = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]


def decay_parameter_names(model: Any) -> list[str]:
    """Names of the parameters weight decay applies to: all but biases and LayerNorm weights."""
    from torch import nn
    from transformers.trainer_pt_utils import get_parameter_names

    return get_parameter_names(model, [nn.LayerNorm], NO_DECAY_NAME_PATTERNS)


def parameter_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decayed parameters first, then biases and LayerNorm weights with no decay."""
    decayed = set(decay_parameter_names(model))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in named if n in decayed], "weight_decay": weight_decay},
        {"params": [p for n, p in named if n not in decayed], "weight_decay": 0.0},
    ]


def warmup(cfg: RunConfig) -> float:
    """The warm-up as TrainingArguments.warmup_steps takes it: a step count, or a fraction below 1."""
    return float(cfg.warmup_steps) if cfg.warmup_steps > 0 else cfg.warmup_ratio


def warmup_steps(cfg: RunConfig, total_steps: int) -> int:
    value = warmup(cfg)
    return int(value) if value >= 1 else math.ceil(total_steps * value)


def scheduler(cfg: RunConfig, optimizer: Any, total_steps: int) -> Any:
    from transformers import get_scheduler

    return get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=warmup_steps(cfg, total_steps),
                         num_training_steps=total_steps)


def accumulation_scale(batch_number: int, epoch_length: int | None, accumulation: int) -> float:
    """What the `batch_number`-th batch of an epoch (from 1) multiplies its mean loss by so that a step's
    loss is the mean over the batches it accumulates: 1, except in an epoch's last step when fewer than
    `accumulation` batches are left (the loop divides every batch's loss by `accumulation`; the Trainer divides
    by the batches that step really has). A stream's epochs have no known length: 1."""
    if accumulation == 1 or epoch_length is None:
        return 1.0
    step_start = (batch_number - 1) // accumulation * accumulation
    return accumulation / min(accumulation, epoch_length - step_start)


def without_labels(batch: dict[str, Any]) -> dict[str, Any]:
    """The model's inputs when the task computes the loss itself (no second loss inside the model)."""
    return {k: v for k, v in batch.items() if k != "labels"}


def batch_tokens(batch: dict[str, Any]) -> Any:
    """Input tokens of a batch as a tensor on the batch's device (no synchronisation per step), padding
    excluded when there is an attention mask (as the Trainer counts them with
    `include_num_input_tokens_seen="non_padding"`)."""
    mask = batch.get("attention_mask")
    return mask.sum() if mask is not None else batch["input_ids"].new_tensor(batch["input_ids"].numel())


def gathered_count(accelerator: Any, count: Any) -> int:
    """A per-process count (int or tensor) summed over all processes."""
    import torch

    value = torch.as_tensor(count, device=accelerator.device).reshape(1).long()
    return int(accelerator.gather(value).sum())


def batch_samples(batch: dict[str, Any]) -> int:
    """Samples (rows) in a batch."""
    return int(next(iter(batch.values())).shape[0])


def training_facts(accelerator: Any, loop: Any, seconds: float) -> dict[str, Any]:
    """run.json's training facts from a loop's per-process counts, summed over the processes: `loop` (the
    Accelerate loop, or the Trainer) counts `tokens`, `samples`, `positions` and `batches_split`, and holds its
    `splitting` (--length-split)."""
    from nlpcli.runner import length_split

    tokens, samples, positions, split = (gathered_count(accelerator, getattr(loop, name))
                                         for name in ("tokens", "samples", "positions", "batches_split"))
    return {**throughput(tokens, seconds, samples, positions), **length_split.facts(loop.splitting, split)}


def throughput(tokens: int, seconds: float, samples: int, positions: int = 0) -> dict[str, Any]:
    """The training facts run.json keeps: samples and tokens trained on (all processes, this session), time,
    samples and tokens per second, the share of the batches' positions that was padding, and the peak memory
    of this process."""
    return {
        "train_samples_seen": int(samples),
        "train_tokens": int(tokens),
        "train_runtime_s": round(seconds, 3),
        "train_samples_per_second": round(samples / seconds, 2) if seconds > 0 else None,
        "train_tokens_per_second": round(tokens / seconds, 1) if seconds > 0 else None,
        **({"train_padding_share": round(1 - tokens / positions, 4)} if positions else {}),
        "peak_memory_mb": peak_memory_mb(),
    }


def peak_memory_mb() -> float:
    """CUDA's peak allocated memory on a GPU; on a CPU the process's peak resident set size."""
    import torch

    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)
