"""SIGTERM and SIGINT stop a run at the end of its optimizer step, with a checkpoint there, the lock removed, the
conventional exit code and one line saying how to resume; the resumed run ends as an uninterrupted one."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, read_json, run_cli, torchrun

ARGS = ["ner", "--model", "tiny", "--dataset", "sample", "--batch-size", "2", "--learning-rate", "5e-3",
        "--logging-steps", "1", "--max-steps", "30", "--save-steps", "100"]  # 29 steps of margin for the signal


def started_training(out: Path, running: subprocess.Popen, deadline: float = 300) -> None:
    """Wait until the run logged a record past step 0 (the evaluation before training, at step 0, comes first)."""
    limit = time.time() + deadline
    history = out / "log_history.jsonl"
    while not history.is_file() or not re.search(r'^\{"step": [1-9]', history.read_text(), re.MULTILINE):
        assert running.poll() is None and time.time() < limit, "the run ended before it trained"
        time.sleep(0.01)


@pytest.mark.e2e
@pytest.mark.parametrize(("loop", "signum"), [("trainer", signal.SIGTERM), ("accelerate", signal.SIGINT)])
def test_a_signal_saves_a_checkpoint_at_the_step_and_resume_finishes_as_an_uninterrupted_run(tmp_path, loop, signum):
    args = [*ARGS, "--loop", loop]
    cut = tmp_path / "cut"
    running = subprocess.Popen([sys.executable, "-m", "nlpcli", *args, "--output-dir", str(cut)], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "COLUMNS": "400"})
    started_training(cut, running)
    os.kill(running.pid, signum)
    output, _ = running.communicate(timeout=300)
    assert running.returncode == 128 + signum, output
    step = int(output.split("interrupted at step ")[1].split(":")[0])
    assert f"checkpoint-{step} saved; resume with: nlpcli {' '.join(args)} --output-dir {cut} --resume" in output
    assert 1 <= step < 30 and (cut / f"checkpoint-{step}" / "nlpcli_record.json").is_file()
    assert not (cut / ".nlpcli.lock").exists() and not (cut / "metrics.json").exists()
    resumed = run_cli(*args, "--output-dir", cut, "--resume")
    assert resumed.exit_code == 0, resumed.output
    full = run_cli(*args, "--output-dir", tmp_path / "full")
    assert full.exit_code == 0, full.output
    assert read_json(cut / "metrics.json") == read_json(tmp_path / "full" / "metrics.json")


@pytest.mark.e2e
def test_sigterm_to_torchrun_stops_both_processes_at_one_step_and_resume_finishes(tmp_path):
    from conftest import free_port

    out = tmp_path / "run"
    args = [*ARGS[:-6], "--max-steps", "30", "--save-steps", "100", "--output-dir", str(out)]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(free_port()), "-m", "nlpcli", *args]
    running = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "COLUMNS": "400"})
    started_training(out, running)
    running.send_signal(signal.SIGTERM)  # torchrun forwards it to its workers
    output, _ = running.communicate(timeout=300)
    assert running.returncode != 0, output
    step = int(output.split("interrupted at step ")[1].split(":")[0])
    assert output.count("interrupted at step") == 1, output  # the main process says it
    assert (out / f"checkpoint-{step}" / "trainer_state.json").is_file() and not (out / ".nlpcli.lock").exists()
    resumed = torchrun(2, *args, "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming from checkpoint-{step}" in resumed.stdout + resumed.stderr
    assert "eval_loss" in read_json(out / "metrics.json") and not (out / ".nlpcli.lock").exists()
