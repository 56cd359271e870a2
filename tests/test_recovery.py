"""Recovering from interrupted runs: a half-written checkpoint never counts or blocks, and a resumed run
keeps the figures measured before training instead of measuring its checkpoint."""

from __future__ import annotations

import pytest

from before_the_loop import stop_before_the_loop
from conftest import read_json, read_jsonl, run_cli

NER = ("ner", "--model", "tiny", "--dataset", "sample", "--batch-size", "4", "--learning-rate", "5e-3")
MLM = ("mlm", "--model", "tiny", "--dataset", "sample", "--chunk-size", "32", "--batch-size", "8",
       "--learning-rate", "5e-3", "--max-train-samples", "40", "--max-eval-samples", "16")


def test_an_empty_checkpoint_folder_never_blocks_a_run(tmp_path, monkeypatch):
    """The folder checks and the clean-up come before the data, the model and either loop: the probe stands in
    for all three, so one run covers both loops."""
    reached = stop_before_the_loop(monkeypatch)
    out = tmp_path / "run"
    (out / ".checkpoints.partial" / "checkpoint-5").mkdir(parents=True)  # what a kill -9 during the first save leaves
    fresh = run_cli(*NER, "--max-steps", "3", "--output-dir", out)
    assert fresh.exit_code == 0, fresh.output
    assert "checkpoint-5 is incomplete" in fresh.output and not (out / ".checkpoints.partial").exists()
    assert reached[0]["entries"] == [".nlpcli.lock"]  # removed before the run began
    torn = tmp_path / "torn"
    (torn / ".checkpoints.partial" / "checkpoint-2").mkdir(parents=True)
    (torn / ".checkpoints.partial" / "checkpoint-2" / "model.safetensors").write_bytes(b"")  # its save cut short
    resumed = run_cli(*NER, "--max-steps", "3", "--resume", "--output-dir", torn)
    assert resumed.exit_code == 0, resumed.output
    assert "no complete checkpoint" in resumed.output and "starting from the beginning" in resumed.output
    assert reached[1]["cfg"].resume == "no"  # the loop is told to start from step 0
    assert reached[1]["entries"] == [".nlpcli.lock"]


@pytest.mark.e2e
@pytest.mark.parametrize("loop", ["trainer", "accelerate"])
def test_resume_keeps_the_figures_measured_before_training(tmp_path, loop):
    out = tmp_path / "run"
    first = run_cli(*MLM, "--loop", loop, "--epochs", "1", "--output-dir", out)
    assert first.exit_code == 0, first.output
    before = {k: v for k, v in read_json(out / "metrics.json").items() if k.endswith("_before")}
    assert before == read_json(out / "metrics_before.json") and "eval_perplexity_before" in before
    again = run_cli(*MLM, "--loop", loop, "--epochs", "2", "--resume", "--output-dir", out)
    assert again.exit_code == 0, again.output
    resumed = read_json(out / "metrics.json")
    assert {k: resumed[k] for k in before} == before  # not the checkpoint's perplexity
    assert resumed["eval_perplexity"] < before["eval_perplexity_before"]


@pytest.mark.e2e
@pytest.mark.parametrize("loop", ["trainer", "accelerate"])
def test_resuming_a_finished_run_trains_no_further_step(tmp_path, loop):
    out = tmp_path / "run"
    args = (*NER, "--loop", loop, "--max-steps", "4", "--save-steps", "2", "--output-dir", out)
    first = run_cli(*args)
    assert first.exit_code == 0, first.output
    finished = read_json(out / "metrics.json")
    again = run_cli(*args, "--resume")
    assert again.exit_code == 0, again.output
    assert "training is already complete" in again.output
    steps = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    assert max(steps) == 4, steps  # no checkpoint-5: not one step past --max-steps
    assert read_json(out / "metrics.json") == finished  # the same weights, evaluated again


HISTORY = "log_history.jsonl"
KILLED = {
    "ner": ["ner", "--model", "tiny", "--dataset", "sample", "--batch-size", "2", "--learning-rate", "5e-3",
            "--epochs", "3", "--length-split", "16"],  # batches of unequal sentences run as pieces
    "mlm": ["mlm", "--model", "tiny", "--dataset", "sample", "--chunk-size", "32", "--batch-size", "8",
            "--learning-rate", "5e-3", "--max-train-samples", "48", "--max-eval-samples", "16", "--epochs", "2"],
}


def killed_once_complete(checkpoint, *args) -> None:
    """`nlpcli ARGS` in a process of its own, killed with SIGKILL once `checkpoint` is complete (its loop's state is
    the last file a save writes before the rename). The process is forked from this one, so it imports nothing
    again: it runs the command as this process would and never comes back (whatever happens, it ends with
    os._exit, running no clean-up of this process's)."""
    import os
    import signal
    import time

    child = os.fork()
    if child == 0:
        try:
            run_cli(*args)
        finally:
            os._exit(0)
    done = ("trainer_state.json", "nlpcli_state.json")
    deadline = time.time() + 300
    while not any((checkpoint / name).is_file() for name in done):
        ended, _ = os.waitpid(child, os.WNOHANG)
        if ended or time.time() > deadline:
            if not ended:
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
            pytest.fail(f"the run ended (or took 300 s) before {checkpoint.name}")
        time.sleep(0.01)
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)


@pytest.mark.e2e
@pytest.mark.parametrize("loop", ["trainer", "accelerate"])
@pytest.mark.parametrize("task", ["ner", "mlm"])
def test_a_run_killed_after_a_checkpoint_resumes_to_the_same_metrics(tmp_path, task, loop):
    """SIGKILL once checkpoint-4 (inside the first or second epoch) is complete, then --resume: metrics.json
    equals an uninterrupted run's, to the last digit (dropout and mlm's masks included). The killed run is a
    process of its own; the uninterrupted and the resumed ones run here, on the same one thread."""
    args = [*KILLED[task], "--save-steps", "2", "--logging-steps", "2", "--save-total-limit", "10", "--loop", loop]
    full = run_cli(*args, "--output-dir", tmp_path / "full")
    assert full.exit_code == 0, full.output
    cut = tmp_path / "cut"
    killed_once_complete(cut / "checkpoint-4", *args, "--output-dir", cut)
    assert not (cut / "metrics.json").exists() and (cut / ".nlpcli.lock").is_file()  # nothing ran its clean-up
    resumed = run_cli(*args, "--output-dir", cut, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert read_json(cut / "metrics.json") == read_json(tmp_path / "full" / "metrics.json")  # train_loss too
    if task == "ner":
        assert read_json(tmp_path / "full" / "run.json")["length_split"]["batches_split"] >= 1
    # the history keeps what came before the checkpoint and ends as the uninterrupted run's does
    timeless = [{k: v for k, v in r.items() if k != "samples_per_second"} for r in read_jsonl(cut / HISTORY)]
    assert timeless == [{k: v for k, v in r.items() if k != "samples_per_second"}
                        for r in read_jsonl(tmp_path / "full" / HISTORY)]


@pytest.mark.e2e
def test_resume_auto_starts_a_job_and_restarts_it_with_one_command_line(tmp_path):
    out = tmp_path / "run"
    args = (*NER, "--max-steps", "3", "--save-steps", "2", "--resume", "auto", "--output-dir", out)
    first = run_cli(*args)  # nothing to resume: a new run, no warning
    assert first.exit_code == 0, first.output
    assert "no complete checkpoint" not in first.output and (out / "metrics.json").is_file()
    again = run_cli(*args)  # the same command line again: it continues (here: the run is complete)
    assert again.exit_code == 0, again.output
    assert "training is already complete" in again.output


def test_resume_values_on_the_command_line_and_in_yaml(tmp_path):
    from nlpcli.config_args import with_bare_values
    from nlpcli.config_layers import resolve_config
    from nlpcli.tasks.ner import NerConfig

    assert with_bare_values(["ner", "--resume", "--epochs", "2"]) == ["ner", "--resume", "yes", "--epochs", "2"]
    assert with_bare_values(["ner", "--resume"]) == ["ner", "--resume", "yes"]
    assert with_bare_values(["ner", "--resume", "auto"]) == ["ner", "--resume", "auto"]
    assert with_bare_values(["ner", "--no-resume"]) == ["ner", "--resume", "no"]
    saved = tmp_path / "old.yaml"
    saved.write_text("resume: true\n")  # configs saved before resume took `auto`
    assert resolve_config(NerConfig, "ner", saved).resume == "yes"
    assert resolve_config(NerConfig, "ner", set_values={"resume": "false"}).resume == "no"


@pytest.mark.e2e
@pytest.mark.parametrize("loop", ["trainer", "accelerate"])
def test_checkpoints_are_staged_then_renamed_and_a_crashed_staging_folder_never_counts(tmp_path, loop):
    out = tmp_path / "run"
    (out / ".checkpoints.partial" / "checkpoint-4").mkdir(parents=True)  # a save cut short by a crash
    result = run_cli(*NER, "--loop", loop, "--max-steps", "4", "--save-steps", "2", "--resume", "auto",
                     "--output-dir", out)
    assert result.exit_code == 0, result.output
    assert not (out / ".checkpoints.partial").exists(), "staged checkpoints are renamed away or removed"
    names = {p.name for p in out.glob("checkpoint-*")}
    assert names == {"checkpoint-2", "checkpoint-4"}  # every 2 steps (no epoch-end one); --save-total-limit 2
    done = ("trainer_state.json", "nlpcli_state.json")
    assert all(any((out / name / f).is_file() for f in done) for name in names)


@pytest.mark.e2e
def test_resume_skips_a_truncated_newest_checkpoint_and_continues_from_the_one_before(tmp_path):
    out = tmp_path / "run"
    args = (*NER, "--max-steps", "4", "--save-steps", "2", "--output-dir", out)
    first = run_cli(*args)
    assert first.exit_code == 0, first.output
    finished = read_json(out / "metrics.json")
    weights = out / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a copy cut short, a full disk
    (out / "metrics.json").unlink()
    again = run_cli(*args, "--resume")
    assert again.exit_code == 0, again.output
    said = " ".join(again.output.split())
    assert f"checkpoint-4 is damaged, skipping it: {weights} does not read back" in said, said
    assert "resuming from checkpoint-2" in said
    assert read_json(out / "metrics.json") == finished  # steps 3 and 4 again, as they were


@pytest.mark.e2e
@pytest.mark.parametrize("loop", ["trainer", "accelerate"])
def test_a_loss_that_turns_nan_after_a_checkpoint_keeps_it_and_exits_2(tmp_path, loop):
    """Warm-up from 0 makes step 1 a no-op and step 2 a 1e6 step: the losses of steps 1 and 2 are finite and
    checkpoint-2 is saved with finite (if wild) weights, then step 3's loss is NaN."""
    from test_translate import assert_finite_weights

    out = tmp_path / loop
    result = run_cli(*NER, "--learning-rate", "1e9", "--warmup-steps", "1000",  # the last --learning-rate counts
                     "--lr-scheduler", "constant_with_warmup", "--max-grad-norm", "0", "--max-steps", "8",
                     "--save-steps", "2", "--logging-steps", "1", "--loop", loop, "--output-dir", out)
    assert result.exit_code == 2, result.output
    assert "no longer finite (NaN or inf) at step 3" in result.output and "checkpoint-2" in result.output
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-2"]
    assert_finite_weights(out / "checkpoint-2")
    assert not (out / "model.safetensors").exists() and not (out / "metrics.json").exists()
    assert [row["step"] for row in read_jsonl(out / "log_history.jsonl") if "loss" in row] == [1, 2]


@pytest.mark.e2e
def test_a_two_process_run_killed_after_a_checkpoint_resumes_to_the_same_metrics(tmp_path):
    """torchrun with 2 processes, SIGKILL to the launcher and both workers once checkpoint-4 is complete, then
    --resume with 2 processes: metrics.json equals the uninterrupted 2-process run's, to the last digit (same
    world size and batch shapes). The Accelerate loop, whose resume goes inside the epoch through each process's
    own loader state (test_signals kills the Trainer's under torchrun); three torchrun runs."""
    import subprocess

    from conftest import REPO, kill_launched, torchrun, torchrun_command, wait_for

    args = [*KILLED["ner"], "--save-steps", "2", "--logging-steps", "2", "--save-total-limit", "10", "--loop",
            "accelerate"]
    full = torchrun(2, *args, "--output-dir", tmp_path / "full")
    assert full.returncode == 0, full.stderr[-3000:]
    cut = tmp_path / "cut"
    launcher = subprocess.Popen(torchrun_command(2, *args, "--output-dir", cut), cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: (cut / "checkpoint-4" / "nlpcli_state.json").is_file(), launcher, "checkpoint-4")
    kill_launched(launcher)
    assert not (cut / "metrics.json").exists()
    resumed = torchrun(2, *args, "--output-dir", cut, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert read_json(cut / "metrics.json") == read_json(tmp_path / "full" / "metrics.json")  # train_loss too
    assert read_json(tmp_path / "full" / "run.json")["length_split"]["batches_split"] >= 1  # pieces, under DDP
    timeless = [{k: v for k, v in r.items() if k != "samples_per_second"} for r in read_jsonl(cut / HISTORY)]
    assert timeless == [{k: v for k, v in r.items() if k != "samples_per_second"}
                        for r in read_jsonl(tmp_path / "full" / HISTORY)]


@pytest.fixture
def file_size_limit():
    """Sets this process's file size limit (what `ulimit -f` sets) when called with a size, lifts it when called
    with None; lifted after the test whatever happens."""
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    if hard != resource.RLIM_INFINITY:
        pytest.skip("a hard file size limit is set")

    def limit(size: int | None) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY if size is None else size, hard))

    yield limit
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@pytest.mark.e2e
@pytest.mark.parametrize("loop", ["trainer", "accelerate"])
def test_a_full_disk_during_a_checkpoint_exits_2_and_the_run_resumes_once_there_is_space(tmp_path, loop, monkeypatch,
                                                                                      file_size_limit):
    """A file size limit set once checkpoint-2 is in place (Python ignores SIGXFSZ: a write past it fails with
    EFBIG): checkpoint-4's optimizer state (~0.9 MB) cannot be written. One message naming it and the reason, no
    traceback; the staging folder and the lock are gone, checkpoint-2 is untouched, and --resume goes on from it."""
    from nlpcli.runner import checkpoints

    publish = checkpoints.publish

    def publish_then_limit(staged, path):
        publish(staged, path)
        if path.name == "checkpoint-2":
            file_size_limit(600_000)

    monkeypatch.setattr(checkpoints, "publish", publish_then_limit)
    out = tmp_path / "run"
    args = (*NER, "--loop", loop, "--max-steps", "4", "--save-steps", "2", "--eval-strategy", "no",
            "--max-eval-samples", "2", "--output-dir", out)
    result = run_cli(*args)
    file_size_limit(None)
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert (f"error: saving checkpoint-4 failed (what it had written, {out / '.checkpoints.partial' / 'checkpoint-4'}"
            ", is removed): the file size limit (ulimit -f) was reached." in said), said
    assert "(checkpoint-2 is the newest); once there is space" in said and "Traceback" not in result.output
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-2"] and not (out / "metrics.json").exists()
    assert not (out / ".checkpoints.partial").exists() and not (out / ".nlpcli.lock").exists()
    kept = {p.name: p.read_bytes() for p in (out / "checkpoint-2").iterdir()}
    assert checkpoints.latest(out) == out / "checkpoint-2"  # every file reads back
    resumed = run_cli(*args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "resuming from checkpoint-2 (step 2," in resumed.output
    assert {p.name: p.read_bytes() for p in (out / "checkpoint-2").iterdir()} == kept
    assert (out / "checkpoint-4").is_dir() and (out / "metrics.json").is_file()
