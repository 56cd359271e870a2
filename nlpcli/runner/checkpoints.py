"""Checkpoint folders (`checkpoint-<step>`) both loops write, and which of them count.

Both loops write a checkpoint into `.checkpoint-<step>.partial` and rename it into place once every
process has written its part. A checkpoint is complete once its last file is written: `trainer_state.json`
for the Trainer (after the model, optimizer, scheduler and RNG states), `nlpcli_state.json` for the
Accelerate loop (after `save_state`). A folder without it was cut short by a crash or a `kill -9`: it never
counts, neither for `--resume` nor as an earlier run that a new one must not overwrite, and a new run or
a resume removes it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from nlpcli import layout
from nlpcli.console import warn

COMPLETION_FILES = (layout.TRAINER_STATE, layout.LOOP_STATE)


def by_step(output_dir: Path) -> list[Path]:
    """Every `checkpoint-<step>` folder, oldest first."""
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.glob(f"{layout.CHECKPOINT_PREFIX}*")
             if p.is_dir() and layout.checkpoint_step(p.name) is not None]
    return sorted(found, key=lambda p: layout.checkpoint_step(p.name) or 0)


def is_complete(path: Path) -> bool:
    return any((path / name).is_file() for name in COMPLETION_FILES)


def complete(output_dir: Path) -> list[Path]:
    return [p for p in by_step(output_dir) if is_complete(p)]


def latest_complete(output_dir: Path) -> Path | None:
    found = complete(output_dir)
    return found[-1] if found else None


def keep_newest(output_dir: Path, limit: int | None, keep: int | None = None) -> None:
    """--save-total-limit: delete all but the newest `limit` complete checkpoints, sparing the one of step
    `keep` (the best model so far: it counts towards the limit, as the Trainer counts it)."""
    if not limit:
        return
    found = complete(output_dir)
    spared = [p for p in found if keep is not None and p.name == layout.checkpoint_name(keep)]
    newest = [p for p in found if p not in spared][-(limit - len(spared)):] if limit > len(spared) else []
    if not newest and spared and found[-1] not in spared:
        newest = [found[-1]]  # limit 1: the best and the newest (to resume from) both stay
    for stale in found:
        if stale not in spared and stale not in newest:
            shutil.rmtree(stale, ignore_errors=True)


def staging_folder(path: Path) -> Path:
    """Where the Accelerate loop writes a checkpoint before renaming it into place."""
    return path.parent / layout.staging_name(path.name)


def remove_incomplete(output_dir: Path) -> None:
    """Delete the checkpoint folders a crash left half written (main process only)."""
    for path in by_step(output_dir):
        if not is_complete(path):
            warn(f"{path} is incomplete (its save was interrupted); removing it.")
            shutil.rmtree(path, ignore_errors=True)
    for staging in output_dir.glob(layout.STAGING_PATTERN) if output_dir.is_dir() else []:
        shutil.rmtree(staging, ignore_errors=True)
