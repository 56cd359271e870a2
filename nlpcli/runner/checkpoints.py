"""Checkpoint folders (`checkpoint-<step>`) both loops write, and how a crash can never leave half of one.

One mechanism, stage and rename: a folder named `checkpoint-<step>` is always complete.
- Both loops write a checkpoint into `.checkpoints.partial/checkpoint-<step>` (the Trainer because that
  folder is its `output_dir`) and `publish` renames it to `checkpoint-<step>` once every process has written
  its part: one rename, so a `kill -9` leaves either no `checkpoint-<step>` or a whole one.
- A checkpoint is deleted (rotation, or one of the same step being replaced) by renaming it back into
  `.checkpoints.partial` first, then deleting it there: a crash mid-delete leaves no half checkpoint either.
- Whatever `.checkpoints.partial` holds was cut short (a save or a delete): it never counts, neither for
  `--resume` nor as an earlier run that a new one must not overwrite, and a new run or a resume removes it.
- A checkpoint whose files do not all read back (a full disk, a copy cut short) is named and skipped by
  `--resume`, which continues from the newest whole one (`latest`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from nlpcli import layout
from nlpcli.console import warn
from nlpcli.files import checkpoint_problem


def by_step(output_dir: Path) -> list[Path]:
    """Every `checkpoint-<step>` folder, oldest first: each one complete (see the module docstring)."""
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.glob(f"{layout.CHECKPOINT_PREFIX}*")
             if p.is_dir() and layout.checkpoint_step(p.name) is not None]
    return sorted(found, key=lambda p: layout.checkpoint_step(p.name) or 0)


_checked: dict[tuple, str | None] = {}  # (folder, its files' sizes and times) -> what is wrong with it


def problem(checkpoint: Path) -> str | None:
    """What is wrong with a checkpoint (a file that does not read back: files.checkpoint_problem); None when it
    is whole. Read once per state of its files, however often `--resume` asks."""
    key = (str(checkpoint.absolute()), *sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                                               for p in checkpoint.iterdir() if p.is_file()))
    if key not in _checked:
        _checked[key] = checkpoint_problem(checkpoint)
        if _checked[key] is not None:
            warn(f"{checkpoint.name} is damaged, skipping it: {_checked[key]}")
    return _checked[key]


def latest(output_dir: Path) -> Path | None:
    """The newest checkpoint whose files all read back (the one `--resume` continues from); a damaged one is
    named in a warning and skipped."""
    for path in reversed(by_step(output_dir)):
        if problem(path) is None:
            return path
    return None


def resuming_line(checkpoint: Path, step: int, epoch: float) -> str:
    """The one line each loop prints when it resumes: from which checkpoint, at which step and epoch."""
    return f"resuming from {checkpoint.name} (step {step}, epoch {epoch:.2f})"


def staging_root(output_dir: Path) -> Path:
    """The hidden folder of `output_dir` where checkpoints are written before they count (and deleted after)."""
    return output_dir / layout.STAGING


def staging_folder(path: Path) -> Path:
    """Where the checkpoint `path` (`<output>/checkpoint-<step>`) is written before it is renamed into place."""
    return staging_root(path.parent) / path.name


def discard(path: Path) -> None:
    """Delete a checkpoint so that it stops counting at once: renamed into the staging folder, deleted there."""
    trash = staging_root(path.parent) / f"{path.name}{layout.DISCARDED_SUFFIX}"
    shutil.rmtree(trash, ignore_errors=True)
    trash.parent.mkdir(parents=True, exist_ok=True)
    path.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


def publish(staged: Path, path: Path) -> None:
    """Put a complete staged checkpoint in place as `path` (main process, once every process wrote its part)."""
    if path.exists():
        discard(path)
    staged.rename(path)


def keep_newest(output_dir: Path, limit: int | None, keep: int | None = None) -> None:
    """--save-total-limit: delete all but the newest `limit` checkpoints, sparing the one of step `keep` (the
    best model so far: it counts towards the limit, as the Trainer counts it)."""
    if not limit:
        return
    found = by_step(output_dir)
    spared = [p for p in found if keep is not None and p.name == layout.checkpoint_name(keep)]
    newest = [p for p in found if p not in spared][-(limit - len(spared)):] if limit > len(spared) else []
    if not newest and spared and found[-1] not in spared:
        newest = [found[-1]]  # limit 1: the best and the newest (to resume from) both stay
    for stale in found:
        if stale not in spared and stale not in newest:
            discard(stale)


def remove_incomplete(output_dir: Path) -> None:
    """Delete what a crash left in the staging folder: saves and deletions cut short (main process only)."""
    root = staging_root(output_dir)
    if not root.is_dir():
        return
    for path in sorted(root.iterdir()):
        if not path.name.endswith(layout.DISCARDED_SUFFIX):
            warn(f"{path} is incomplete (its save was interrupted); removing it.")
    shutil.rmtree(root, ignore_errors=True)


def remove_staging_root(output_dir: Path) -> None:
    """Drop the staging folder once empty, at the end of a run (the Trainer makes its `output_dir` up front)."""
    try:
        staging_root(output_dir).rmdir()
    except OSError:
        pass  # absent, or not empty (another process of this run is still in it)


def load_weights(model: Any, checkpoint: Path) -> None:
    """Load a checkpoint's model weights into `model`, as the Trainer does when it resumes (on the CPU, not
    strict: tied weights are saved once)."""
    import safetensors.torch
    import torch
    from transformers.trainer_utils import load_sharded_checkpoint

    safe, plain = checkpoint / layout.SAFE_WEIGHTS, checkpoint / layout.WEIGHTS
    if safe.is_file():
        state = safetensors.torch.load_file(str(safe), device="cpu")
    elif plain.is_file():
        state = torch.load(plain, map_location="cpu", weights_only=True)
    else:  # saved in shards, with an index
        load_sharded_checkpoint(model, str(checkpoint), strict=False)
        return
    model.load_state_dict(state, strict=False)


def latest_loop_checkpoint(output_dir: Path) -> tuple[Path, dict] | None:
    """The newest complete checkpoint and where in training it stands."""
    path = latest(output_dir)
    state = path / layout.LOOP_STATE if path is not None else None
    return (path, json.loads(state.read_text())) if state is not None and state.is_file() else None
