"""How the Accelerate loop writes a checkpoint and a model folder. A checkpoint is staged aside and renamed into
place once complete (`checkpoints`): accelerate's training state plus a model folder, as the Trainer's checkpoints
are (predict, --eval-only and --push-to-hub take it), the run record and where in which epoch it stands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from nlpcli import layout
from nlpcli.runner import checkpoints
from nlpcli.runner.context import RunContext
from nlpcli.runner.record import RunRecord


def save_pretrained(accelerator: Any, model: Any, tokenizer: Any, folder: Path) -> None:
    """The model (`save_pretrained` of the unwrapped model) and its tokenizer, into `folder`."""
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.save_pretrained(str(folder), is_main_process=accelerator.is_main_process, save_function=accelerator.save)
    if accelerator.is_main_process:
        tokenizer.save_pretrained(str(folder))
    accelerator.wait_for_everyone()


def save_checkpoint(accelerator: Any, model: Any, ctx: RunContext, record: RunRecord,
                    position: dict[str, int]) -> Path:
    """checkpoint-<step> of the run: staged, complete, then renamed into place; the older ones beyond
    --save-total-limit removed (never the best one). Returns its path."""
    output_dir = ctx.output_dir
    record.checkpoints += 1
    path = output_dir / layout.checkpoint_name(position["step"])
    staging = checkpoints.staging_folder(path)
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.parent.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    # the same weights under transformers' names, which load_state reads back as they are
    save_pretrained(accelerator, model, ctx.tokenizer, staging)
    if accelerator.is_main_process:  # complete, then in place in one rename: never half a checkpoint
        record.save(staging)
        (staging / layout.LOOP_STATE).write_text(json.dumps(position))
        checkpoints.publish(staging, path)
        checkpoints.keep_newest(output_dir, ctx.cfg.save_total_limit, keep=record.best_step)
        ctx.checkpoint_saved(path)
    accelerator.wait_for_everyone()
    return path
