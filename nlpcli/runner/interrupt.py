"""Stopping a run on SIGTERM (what SLURM, Kubernetes and spot instances send) or SIGINT (Ctrl-C) without losing
its training.

While a loop trains, the signal only sets a flag; each loop reads it at the end of an optimizer step, agreed
across processes (one all-reduce per step under DDP, so every process stops at the same step), saves a
checkpoint there when saving is on, and raises `Interrupted`: the run lock goes with the run, and the command
exits 143 (SIGTERM) or 130 (SIGINT) with one line that says how to resume. Outside the training loop (reading
the data, the final evaluation), or on a second signal, `Interrupted` is raised at once.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from nlpcli import layout
from nlpcli.errors import Interrupted
from nlpcli.runner import checkpoints

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Watch:
    """The signal received (None: none yet) and whether the loop is in a training step (the signal waits)."""

    def __init__(self) -> None:
        self.signum: int | None = None  # received, not yet seen at a step's end
        self.deferring = False
        self.stopping = False  # seen at a step's end: the loop is saving and stopping there
        self.output_dir: Path | None = None

    def reset(self, output_dir: Path | None) -> None:
        self.signum, self.deferring, self.stopping, self.output_dir = None, False, False, output_dir

    def handle(self, signum: int, frame: Any) -> None:
        if self.stopping:
            return  # already stopping at this step (a launcher may send its signal to every process again)
        if self.deferring and self.signum is None:
            self.signum = signum  # read at the end of the current optimizer step
            return
        raise interrupted(signum, None, self.output_dir, saved=False)


WATCH = Watch()


def install(output_dir: Path) -> dict[int, Any]:
    """SIGTERM and SIGINT raise `Interrupted` (or wait for the step's end, see `training`) while the run holds
    its output folder; returns the handlers `uninstall` puts back."""
    previous: dict[int, Any] = {}
    WATCH.reset(output_dir)
    try:
        for signum in SIGNALS:
            previous[signum] = signal.signal(signum, WATCH.handle)
        if hasattr(signal, "SIGXFSZ"):  # ignored (as Python ignores it): a write past `ulimit -f` fails with EFBIG,
            previous[signal.SIGXFSZ] = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # and runner/disk_full says so
    except ValueError:  # not the main thread: the signals keep their handlers
        pass
    return previous


def uninstall(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
    WATCH.reset(None)


def begin_training() -> None:
    """From here a signal waits for the end of the optimizer step under way (the loop calls `agreed` there)."""
    WATCH.deferring = True


def end_training() -> None:
    """The loop is left: a signal that came after the last step's end stops the run now."""
    WATCH.deferring = False
    if WATCH.signum is not None and not WATCH.stopping:
        raise interrupted(WATCH.signum, None, WATCH.output_dir, saved=False)


def agreed(accelerator: Any) -> int | None:
    """The signal any process received (the same answer on every process), at an optimizer step's end."""
    signum = WATCH.signum or 0
    if accelerator.num_processes > 1:
        import torch

        flag = torch.tensor([signum], device=accelerator.device)
        signum = int(accelerator.reduce(flag, reduction="sum").max())  # SIGINT 2 + SIGTERM 15: 17, still a stop
        signum = signum if not signum or signum in SIGNALS else signal.SIGTERM
    if signum:
        WATCH.signum, WATCH.stopping = None, True  # every process stops here, the ones sent nothing too
    return signum or None


def stop(signum: int, step: int, output_dir: Path, saved: bool) -> Interrupted:
    """What the loop raises once it stopped at `step` (and saved checkpoint-<step> when `saved`)."""
    return interrupted(signum, step, output_dir, saved)


def interrupted(signum: int, step: int | None, output_dir: Path | None, saved: bool) -> Interrupted:
    name = signal.Signals(signum).name
    again = resume_command()
    if step is not None and saved:
        line = f"interrupted at step {step}: {layout.checkpoint_name(step)} saved; resume with: {again}"
    elif step is not None:
        line = (f"interrupted at step {step}: no checkpoint saved (--save-strategy no); start again with: "
                f"{resume_command(resume=False)}")
    else:
        kept = checkpoints.by_step(output_dir) if output_dir is not None else []
        line = (f"interrupted: the checkpoints saved so far are kept ({kept[-1].name} is the newest); resume with: "
                f"{again}" if kept else "interrupted before any checkpoint was saved")
    return Interrupted(f"{line} ({name})", exit_code=128 + signum)


def resume_command(resume: bool = True) -> str:
    """This process's command line as `nlpcli ...`, with --resume (when not given already) under a launcher
    the launcher's own part is said, not repeated."""
    args = [a for a in sys.argv[1:] if a != "--no-resume"]
    given = [i for i, a in enumerate(args) if a == "--resume"]
    if given and given[-1] + 1 < len(args) and args[given[-1] + 1] in ("no", "false"):
        args[given[-1] + 1] = "yes"
    elif resume and not given and not any(a.startswith("--resume=") for a in args):
        args.append("--resume")
    command = shlex.join(["nlpcli", *args])
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return f"the same launcher command with {command}"
    return command
