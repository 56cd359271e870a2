"""A run stopped by a full disk, a disk quota or a file size limit (`ulimit -f`): one message and exit 2, never a
traceback, and nothing half-written that counts.

Whatever write failed (a checkpoint, the model, a data set's cache), the message names what was being written and
why. A checkpoint cut short in the staging folder is removed; the lock goes with the run (`run.run_task`); the
complete checkpoints stay as they were, so `--resume` continues once there is space again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from nlpcli import layout
from nlpcli.console import is_main_process
from nlpcli.errors import UserError
from nlpcli.files import error_chain, write_failure
from nlpcli.runner import checkpoints, interrupt


def _filename(err: BaseException) -> str | None:
    """The file an OSError in `err`'s chain names, if any."""
    return next((str(e.filename) for e in error_chain(err) if isinstance(e, OSError) and e.filename), None)


def stopped(err: BaseException, output_dir: Path) -> UserError | None:
    """The refusal a run ends with when `err` is a write that failed for want of space (`files.write_failure`),
    once the checkpoint it cut short is removed (main process); None for any other error."""
    cause = write_failure(err)
    if cause is None:
        return None
    staging = checkpoints.staging_root(output_dir)
    cut = sorted(p for p in staging.iterdir() if not p.name.endswith(layout.DISCARDED_SUFFIX)) if (
        staging.is_dir()) else []
    if is_main_process():
        shutil.rmtree(staging, ignore_errors=True)
    filename = _filename(err)
    if cut:
        what = f"saving {cut[0].name} failed (what it had written, {cut[0]}, is removed)"
    elif filename:
        what = f"writing {filename} failed"
    else:
        what = f"writing into {output_dir} failed"
    kept = checkpoints.by_step(output_dir)
    after = (f"The complete checkpoints are kept ({kept[-1].name} is the newest); once there is space (or a higher "
             f"ulimit -f), resume with: {interrupt.resume_command()}" if kept else
             "No checkpoint was saved; once there is space (or a higher ulimit -f), start the run again.")
    return UserError(f"{what}: {cause}.", hint=after)
