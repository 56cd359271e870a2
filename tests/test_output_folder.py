"""The output folder: finished runs are not overwritten without --overwrite, one run at a time (lock),
paths that cannot hold a run are refused before anything is written."""

from __future__ import annotations

import json
import os
import socket

import pytest

from before_the_loop import stop_before_the_loop
from conftest import read_json, run_cli

SMOKE = ("ner", "--model", "tiny", "--dataset", "sample", "--max-steps", "2", "--batch-size", "4")


@pytest.mark.e2e
def test_a_finished_run_is_refused_then_replaced_with_overwrite(tmp_path):
    for name in ("metrics.json", "model.safetensors"):  # only its metrics, or only a model: a finished run
        lone = tmp_path / name
        lone.mkdir()
        (lone / name).write_text("{}")
        result = run_cli(*SMOKE, "--output-dir", lone)
        assert result.exit_code == 2 and f"holds a finished run ({name})" in result.output
    out = tmp_path / "run"  # what a finished run leaves (made by hand: refusing it needs no earlier training)
    out.mkdir()
    for name in ("config.json", "model.safetensors", "metrics.json", "stale.txt"):
        (out / name).write_text("{}")
    result = run_cli(*SMOKE, "--output-dir", out)
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (out / "stale.txt").is_file()  # refused: nothing touched
    result = run_cli(*SMOKE, "--output-dir", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert not (out / "stale.txt").exists() and (out / "metrics.json").is_file()
    assert read_json(out / "metrics.json")["eval_loss"] > 0  # the new run's, not the "{}" it replaced
    assert not (out / ".nlpcli.lock").exists()  # released at the end


def test_a_second_run_into_a_locked_folder_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = {"pid": os.getppid(), "host": socket.gethostname(), "started": "2026-01-01T00:00:00"}
    (out / ".nlpcli.lock").write_text(json.dumps(holder))
    result = run_cli(*SMOKE, "--output-dir", out)
    assert result.exit_code == 2
    assert f"in use by another nlpcli run (pid {os.getppid()}" in result.output.replace("\n", " ")
    assert read_json(out / ".nlpcli.lock") == holder  # someone else's lock is left alone


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, monkeypatch):
    reached = stop_before_the_loop(monkeypatch)  # the lock is taken before the run reads any data
    out = tmp_path / "run"
    out.mkdir()
    (out / ".nlpcli.lock").write_text(json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname()}))
    result = run_cli(*SMOKE, "--output-dir", out)
    assert result.exit_code == 0, result.output
    assert "no longer runs" in result.output and not (out / ".nlpcli.lock").exists()
    (run,) = reached
    assert run["lock"]["pid"] == os.getpid()  # held by this run while it ran


def test_an_output_dir_that_is_a_file_or_unwritable_is_refused(tmp_path):
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    result = run_cli(*SMOKE, "--output-dir", afile)
    assert result.exit_code == 2 and "is a file" in result.output
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: nothing to check here
            return
        result = run_cli(*SMOKE, "--output-dir", locked / "run")
        assert result.exit_code == 2 and "not writable" in result.output
    finally:
        locked.chmod(0o700)


def test_an_output_dir_that_cannot_be_created_is_named(tmp_path, monkeypatch):
    """/proc takes no new folders, even from root (who passes the writable check)."""
    reached = stop_before_the_loop(monkeypatch)
    result = run_cli(*SMOKE, "--output-dir", "/proc/nlpcli-run")
    assert result.exit_code == 2 and "/proc" in result.output and "Traceback" not in result.output, result.output
    assert not reached


def test_a_run_refused_for_its_data_leaves_no_folder(tmp_path):
    out = tmp_path / "run"
    result = run_cli(*SMOKE, "--text-column", "nope", "--output-dir", out)
    assert result.exit_code == 2 and not out.exists()


def test_resume_and_overwrite_together_are_refused(tmp_path):
    result = run_cli(*SMOKE, "--resume", "--overwrite", "--output-dir", tmp_path / "run")
    assert result.exit_code == 2 and "choose one" in result.output


def test_atomic_writes_get_the_permissions_of_a_plain_write(tmp_path):
    import os
    import stat

    from nlpcli.files import write_text_atomic

    previous = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "metrics.json", "{}")
        (tmp_path / "plain.json").write_text("{}")
    finally:
        os.umask(previous)
    mode = stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.json").stat().st_mode) == 0o644  # readable by the team
