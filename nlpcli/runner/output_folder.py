"""The output folder of a run: what a new run may write into, and one run at a time.

- A path that is a file, or a folder that cannot be written, is refused before anything runs.
- A folder that holds an earlier run (a saved model, complete checkpoints or metrics.json) is refused unless
  the run continues it (--resume), only evaluates (--eval-only), or replaces it (--overwrite clears it
  first). --resume with no complete checkpoint starts from the beginning, with a warning.
- A run holds `<output>/.nlpcli.lock` (pid, host, start time) for its whole life. A second run into the
  same folder is refused, naming the first; a lock left by a process that no longer exists on this host
  is taken over with a warning.
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
from nlpcli.config import resuming
from nlpcli.console import warn
from nlpcli.errors import UserError
from nlpcli.runner import checkpoints


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_dir(output_dir: Path, cfg: Any) -> None:
    """Refuse an output folder this run must not write into (see the module docstring)."""
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"--output-dir {output_dir} is a file; give a folder.")
    existing = _nearest_existing(output_dir.absolute())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"--output-dir {output_dir}: {existing} is not writable.")
    if resuming(cfg) and cfg.overwrite:
        raise UserError("--resume continues the run in the output folder and --overwrite deletes it: choose one.")
    kept = checkpoints.by_step(output_dir)
    finished = [name for name in layout.FINISHED_RUN_FILES if (output_dir / name).exists()]
    if resuming(cfg) and not kept:
        if cfg.resume == "yes":
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
        try:
            return json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            return {"pid": -1, "host": socket.gethostname()}  # torn lock file: its writer died mid-write

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
