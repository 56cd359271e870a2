"""The output folder of a run: what a new run may write into, and one run at a time.

- A path that is a file, or a folder that cannot be written (or created), is refused before anything runs.
- A folder that holds an earlier run (a saved model, complete checkpoints or metrics.json) is refused unless
  the run continues it (--resume), only evaluates (--eval-only), or replaces it (--overwrite clears it
  first). --resume with no complete checkpoint starts from the beginning, with a warning.
- `--resume PATH` names a complete `checkpoint-<step>` folder (the output folder is its parent): a path that is
  no checkpoint, one cut short or one damaged is refused before anything runs; whether it is this run's (its
  folder, loop, task, model and settings) is `runner/continuity.py`'s one refusal. The checkpoints newer than
  it are of the training it replaces: they go once the folder is locked (`drop_newer`), so that neither
  rotation nor a later --resume mistakes them for this run's.
- A run holds `<output>/.nlpcli.lock` (pid, host, start time) for its whole life. A second run into the
  same folder is refused, naming the first; a lock left by a process that no longer exists on this host
  is taken over with a warning; so is a lock that cannot be read (cut short, or not UTF-8 JSON).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

from nlpcli import layout
from nlpcli.config import resume_checkpoint, resuming
from nlpcli.console import warn
from nlpcli.errors import UserError
from nlpcli.files import checkpoint_problem
from nlpcli.runner import checkpoints


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def output_dir_of(cfg: Any) -> Path | None:
    """--output-dir, or the run folder of the checkpoint `--resume PATH` names; None: neither (a new folder)."""
    if cfg.output_dir:
        return Path(cfg.output_dir)
    checkpoint = resume_checkpoint(cfg)
    return checkpoint.parent if checkpoint is not None else None


def same_model(saved: Any, model: str) -> bool:
    if str(saved) == model:
        return True
    saved_path, path = Path(str(saved)).expanduser(), Path(model).expanduser()
    return saved_path.exists() and path.exists() and saved_path.resolve() == path.resolve()


STATE_FILES = {"trainer": layout.TRAINER_STATE, "accelerate": layout.LOOP_STATE}  # what each loop's checkpoint holds


def written_by(checkpoint: Path) -> list[str]:
    """The loops whose state a checkpoint holds (one, or none for a checkpoint cut short)."""
    return [loop for loop, name in STATE_FILES.items() if (checkpoint / name).is_file()]


def check_resume_checkpoint(checkpoint: Path) -> None:
    """Refuse a `--resume PATH` that names no complete checkpoint (see the module docstring)."""
    given = f"--resume {checkpoint}"
    if not checkpoint.exists():
        raise UserError(f"{given}: no such folder.")
    if layout.checkpoint_step(checkpoint.name) is None or not checkpoint.is_dir():
        raise UserError(f"{given} is not a checkpoint: --resume takes yes, auto, no or a "
                        f"{layout.CHECKPOINT_PREFIX}<step> folder of the run.")
    if checkpoint.absolute().parent.name == layout.STAGING:
        raise UserError(f"{given} is not complete: its save was cut short (complete checkpoints are "
                        f"{layout.CHECKPOINT_PREFIX}<step> folders of the run folder).")
    if not written_by(checkpoint):
        raise UserError(f"{given} is not complete: it holds no {' or '.join(STATE_FILES.values())}.")
    damaged = checkpoint_problem(checkpoint)
    if damaged:
        raise UserError(f"{given} is damaged: {damaged}.", hint="Resume from an older checkpoint.")


def drop_newer(output_dir: Path, cfg: Any) -> None:
    """`--resume PATH` from an older checkpoint than the newest: delete the newer ones (main process)."""
    checkpoint = resume_checkpoint(cfg)
    step = layout.checkpoint_step(checkpoint.name) if checkpoint is not None else None
    if step is None:
        return
    newer = [p for p in checkpoints.by_step(output_dir) if (layout.checkpoint_step(p.name) or 0) > step]
    if newer:
        warn(f"--resume {checkpoint.name}: deleting the newer {', '.join(p.name for p in newer)} (the training "
             "after it is replaced).")
    for path in newer:
        checkpoints.discard(path)


def check_output_dir(output_dir: Path, cfg: Any) -> None:
    """Refuse an output folder this run must not write into (see the module docstring)."""
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"--output-dir {output_dir} is a file; give a folder.")
    existing = _nearest_existing(output_dir.absolute())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"--output-dir {output_dir}: {existing} is not writable.")
    if resuming(cfg) and cfg.overwrite:
        raise UserError("--resume continues the run in the output folder and --overwrite deletes it: choose one.")
    checkpoint = resume_checkpoint(cfg)
    if checkpoint is not None:
        check_resume_checkpoint(checkpoint)
    kept = checkpoints.by_step(output_dir)
    finished = [name for name in layout.FINISHED_RUN_FILES if (output_dir / name).exists()]
    if resuming(cfg) and checkpoint is None and checkpoints.latest(output_dir) is None:  # none that reads back
        if cfg.resume == "yes" or kept:
            warn(f"--resume: no complete checkpoint in {output_dir}; starting from the beginning.")
        cfg.resume = "no"
    if (kept or finished) and not (resuming(cfg) or cfg.eval_only or cfg.overwrite):
        held = f"checkpoints of an earlier run ({kept[0].name}, ...)" if kept else (
            f"a finished run ({', '.join(finished)})")
        raise UserError(f"{output_dir} holds {held}.",
                        hint="Pass --resume to continue it, --overwrite to replace it, or choose another --output-dir.")


def clear(output_dir: Path) -> None:
    """--overwrite: everything in the folder but the lock goes."""
    if not output_dir.is_dir():
        return
    for entry in output_dir.iterdir():
        if entry.name == layout.LOCK:
            continue
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def create(output_dir: Path) -> str | None:
    """Make the output folder (and the folders above it); the refusal when it cannot be made (e.g. under
    /proc, or on a read-only file system)."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"--output-dir {output_dir}: cannot create it ({err.strerror or err})."
    return None


class FolderLock:
    """The lock file of one run; `acquire` returns None or the message saying who holds the folder."""

    def __init__(self, output_dir: Path) -> None:
        self.path = output_dir / layout.LOCK
        self.held = False

    def acquire(self) -> str | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": datetime.now().isoformat("T", "seconds")}
        for _ in range(2):
            try:
                handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder.get("host") == mine["host"] and not _alive(int(holder.get("pid", -1))):
                    warn(f"{self.path}: left by process {holder.get('pid')}, which no longer runs; taking it over.")
                    self.path.unlink(missing_ok=True)
                    continue
                return (f"{self.path.parent} is in use by another nlpcli run (pid {holder.get('pid')} on "
                        f"{holder.get('host')}, since {holder.get('started')}).")
            with os.fdopen(handle, "w") as out:
                json.dump(mine, out)
            self.held = True
            return None
        return f"{self.path}: could not take the lock."

    def _holder(self) -> dict[str, Any]:
        """Who holds the lock; a lock that cannot be read (cut short, not UTF-8, not a JSON object with a
        numeric pid) counts as torn: its writer died mid-write, and a process of this host takes it over."""
        torn = {"pid": -1, "host": socket.gethostname()}
        try:
            holder = json.loads(self.path.read_bytes().decode("utf-8"))
        except (OSError, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            return torn
        if not isinstance(holder, dict):
            return torn
        try:
            int(holder.get("pid", -1))
        except (TypeError, ValueError):
            return torn
        return holder

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
