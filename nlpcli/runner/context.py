"""What the orchestration hands to a training loop."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpcli.config import RunConfig
from nlpcli.tasks.base import Task


@dataclass
class RunContext:
    task: Task
    cfg: RunConfig
    model: Any
    tokenizer: Any
    train_features: Any | None
    eval_features: Any
    raw_eval: Any
    output_dir: Path
    mixed_precision: str  # 'no' | 'fp16' | 'bf16'
