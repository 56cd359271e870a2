"""SIGTERM and SIGINT stop a run at the end of its optimizer step, with a checkpoint there, the lock removed, the
conventional exit code and one line saying how to resume; the resumed run ends as an uninterrupted one, under
torchrun too, where a SIGKILL after the resume is survived as well."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from conftest import REPO, read_json, read_jsonl, run_cli, torchrun

ARGS = ["ner", "--model", "tiny", "--dataset", "sample", "--batch-size", "2", "--learning-rate", "5e-3",
        "--logging-steps", "1", "--max-steps", "8", "--save-steps", "100"]  # 5 steps an epoch: one epoch-end evaluation
HISTORY = "log_history.jsonl"


@pytest.mark.e2e
@pytest.mark.parametrize(("loop", "signum"), [("trainer", signal.SIGTERM), ("accelerate", signal.SIGINT)])
def test_a_signal_saves_a_checkpoint_at_the_step_and_resume_finishes_as_an_uninterrupted_run(tmp_path, loop, signum,
                                                                                           monkeypatch):
    """The run in this process is sent a real signal (the kernel delivers it, the run's handler takes it) during
    step 3, once the step's work is done; test_sigterm_to_torchrun... sends one from another process, at any time."""
    from nlpcli.runner import interrupt

    args = [*ARGS, "--loop", loop]
    cut = tmp_path / "cut"
    agreed, steps = interrupt.agreed, []

    def signalled_in_step_3(accelerator):
        steps.append(len(steps) + 1)
        if len(steps) == 3:
            os.kill(os.getpid(), signum)
        return agreed(accelerator)

    with monkeypatch.context() as patch:
        patch.setattr(interrupt, "agreed", signalled_in_step_3)
        patch.setattr(sys, "argv", ["nlpcli", *args, "--output-dir", str(cut)])  # the command line it repeats
        stopped = run_cli(*args, "--output-dir", cut)
    assert stopped.exit_code == 128 + signum, stopped.output
    step = int(stopped.output.split("interrupted at step ")[1].split(":")[0])
    assert f"checkpoint-{step} saved; resume with: nlpcli {' '.join(args)} --output-dir {cut} --resume" in " ".join(
        stopped.output.split())
    assert 3 <= step < 8 and (cut / f"checkpoint-{step}" / "nlpcli_record.json").is_file()
    assert not (cut / ".nlpcli.lock").exists() and not (cut / "metrics.json").exists()
    assert signal.getsignal(signum) is not interrupt.WATCH.handle  # the handlers before the run are back
    resumed = run_cli(*args, "--output-dir", cut, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming from checkpoint-{step}" in resumed.output
    full = run_cli(*args, "--output-dir", tmp_path / "full")
    assert full.exit_code == 0, full.output
    assert read_json(cut / "metrics.json") == read_json(tmp_path / "full" / "metrics.json")


@pytest.mark.e2e
def test_sigterm_then_sigkill_under_torchrun_and_the_resumed_run_ends_as_the_uninterrupted_one(tmp_path):
    """The Trainer loop, 2 processes (test_recovery kills the Accelerate loop's):
    1. SIGTERM to torchrun (it forwards it to its workers) once the run logged: both processes stop at one step
       and save checkpoint-<step> there; one line says so; the lock is removed.
    2. --resume, killed with SIGKILL (the launcher and both workers) once it saved its next checkpoint.
    3. --resume again: metrics.json and the history are exactly those of the uninterrupted 2-process run."""
    from conftest import kill_launched, torchrun_command, wait_for

    args = [*ARGS[:-6], "--max-steps", "18", "--save-steps", "4", "--save-total-limit", "10"]  # margin for signals
    full = torchrun(2, *args, "--output-dir", tmp_path / "full")
    assert full.returncode == 0, full.stderr[-3000:]
    out = tmp_path / "run"
    running = subprocess.Popen(torchrun_command(2, *args, "--output-dir", out), cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "400"})
    history = out / "log_history.jsonl"
    # a training record (step 1 on): the evaluation before training logs step 0 first
    wait_for(lambda: history.is_file() and bool(re.search(r'^\{"step": [1-9]', history.read_text(), re.MULTILINE)),
             running, "it trained")
    running.send_signal(signal.SIGTERM)  # torchrun forwards it to its workers
    output, _ = running.communicate(timeout=300)
    assert running.returncode != 0, output
    step = int(output.split("interrupted at step ")[1].split(":")[0])
    assert output.count("interrupted at step") == 1, output  # the main process says it
    assert (out / f"checkpoint-{step}" / "trainer_state.json").is_file() and not (out / ".nlpcli.lock").exists()
    log = tmp_path / "resumed.log"
    with log.open("w") as sink:
        resumed = subprocess.Popen(torchrun_command(2, *args, "--output-dir", out, "--resume"), cwd=REPO,
                                   stdout=sink, stderr=subprocess.STDOUT)
        later = step + 4 - step % 4  # the next checkpoint the resumed run saves
        assert later < 18, f"the signal stopped the run at step {step}: no margin left"
        wait_for(lambda: (out / f"checkpoint-{later}" / "trainer_state.json").is_file(), resumed, f"checkpoint-{later}")
        kill_launched(resumed)
    assert f"resuming from checkpoint-{step}" in log.read_text() and not (out / "metrics.json").exists()
    again = torchrun(2, *args, "--output-dir", out, "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    newest = int((again.stdout + again.stderr).split("resuming from checkpoint-")[1].split(" ")[0])
    assert newest >= later  # the newest whole checkpoint (the kill may come a save later)
    assert read_json(out / "metrics.json") == read_json(tmp_path / "full" / "metrics.json")  # train_loss too
    timeless = [[{k: v for k, v in r.items() if k != "samples_per_second"} for r in read_jsonl(run / HISTORY)]
                for run in (out, tmp_path / "full")]
    assert timeless[0] == timeless[1] and not (out / ".nlpcli.lock").exists()
