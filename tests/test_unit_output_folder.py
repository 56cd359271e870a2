"""runner.output_folder without a run: which folders a run refuses, what --overwrite clears, and the lock
(a live holder refuses, a dead process's or torn lock is taken over)."""

from __future__ import annotations

import json
import os
import socket

import pytest

from nlpcli.config import RunConfig
from nlpcli.errors import UserError
from nlpcli.layout import FINISHED_RUN_FILES as RUN_FILES
from nlpcli.layout import LOCK as LOCK_FILE
from nlpcli.runner.output_folder import FolderLock, _alive, check_output_dir, clear, create

DEAD_PID = 2**22 + 12345  # above Linux's largest pid_max: no process has it


def complete_checkpoint(folder, step: int) -> None:
    (folder / f"checkpoint-{step}").mkdir(parents=True)
    (folder / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    import safetensors.torch
    import torch

    safetensors.torch.save_file({"w": torch.zeros(2)}, str(folder / f"checkpoint-{step}" / "model.safetensors"))


def refusal(folder, **options) -> UserError:
    with pytest.raises(UserError) as raised:
        check_output_dir(folder, RunConfig(**options))
    return raised.value


def test_a_new_or_empty_folder_is_accepted(tmp_path):
    check_output_dir(tmp_path / "new" / "deeper", RunConfig())
    check_output_dir(tmp_path, RunConfig())
    assert list(tmp_path.iterdir()) == []  # checking writes nothing


@pytest.mark.parametrize("name", RUN_FILES)
def test_a_finished_run_is_refused_unless_resumed_evaluated_or_overwritten(tmp_path, name):
    (tmp_path / name).write_text("{}")
    error = refusal(tmp_path)
    assert error.message == f"{tmp_path} holds a finished run ({name})."
    assert "--resume" in error.hint and "--overwrite" in error.hint and "--output-dir" in error.hint
    check_output_dir(tmp_path, RunConfig(overwrite=True))
    check_output_dir(tmp_path, RunConfig(eval_only=True))


def test_checkpoints_of_an_earlier_run_are_refused_and_named(tmp_path):
    complete_checkpoint(tmp_path, 3)
    complete_checkpoint(tmp_path, 12)
    (tmp_path / "metrics.json").write_text("{}")
    assert refusal(tmp_path).message == f"{tmp_path} holds checkpoints of an earlier run (checkpoint-3, ...)."
    cfg = RunConfig(resume="yes")
    check_output_dir(tmp_path, cfg)
    assert cfg.resume == "yes"  # there is something to resume from


def test_an_incomplete_checkpoint_does_not_block_a_new_run(tmp_path):
    (tmp_path / ".checkpoints.partial" / "checkpoint-5").mkdir(parents=True)  # what a kill -9 mid-save leaves
    (tmp_path / ".checkpoints.partial" / "checkpoint-5" / "model.safetensors").write_bytes(b"")
    check_output_dir(tmp_path, RunConfig())


@pytest.mark.parametrize(("resume", "warned"), [("yes", True), ("auto", False)])
def test_resume_without_a_complete_checkpoint_starts_from_the_beginning(tmp_path, capsys, resume, warned):
    (tmp_path / ".checkpoints.partial" / "checkpoint-2").mkdir(parents=True)  # its save was cut short
    cfg = RunConfig(resume=resume)
    check_output_dir(tmp_path, cfg)
    assert cfg.resume == "no"
    err = " ".join(capsys.readouterr().err.split())
    assert (f"--resume: no complete checkpoint in {tmp_path}; starting from the beginning." in err) is warned


def test_resume_with_only_a_finished_model_starts_over_but_is_then_refused(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")  # saved with --save-strategy no: nothing to resume
    assert "holds a finished run (model.safetensors)" in refusal(tmp_path, resume="yes").message


def test_resume_and_overwrite_together_are_refused(tmp_path):
    assert "choose one" in refusal(tmp_path / "run", resume="yes", overwrite=True).message
    assert "choose one" in refusal(tmp_path / "run", resume="auto", overwrite=True).message


def test_a_file_or_an_unwritable_folder_is_refused(tmp_path, monkeypatch):
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    assert refusal(afile).message == f"--output-dir {afile} is a file; give a folder."
    locked = tmp_path / "ro"
    locked.mkdir()
    real_access = os.access  # permissions mean nothing to root: say which folder cannot be written
    monkeypatch.setattr(os, "access", lambda path, mode: path != locked and real_access(path, mode))
    # the nearest folder that exists is named: run/deeper do not exist yet
    target = locked / "run" / "deeper"
    assert refusal(target).message == f"--output-dir {target}: {locked} is not writable."
    check_output_dir(tmp_path / "elsewhere", RunConfig())


def test_clear_removes_everything_but_the_lock(tmp_path):
    for name in ("metrics.json", LOCK_FILE):
        (tmp_path / name).write_text("{}")
    complete_checkpoint(tmp_path, 2)
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "kept.txt").write_text("x")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "link").symlink_to(tmp_path / "target")  # a link goes, not what it points to
    clear(tmp_path / "run")
    assert list((tmp_path / "run").iterdir()) == []
    assert (tmp_path / "target" / "kept.txt").is_file()
    clear(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [LOCK_FILE]
    clear(tmp_path / "missing")  # nothing to clear


def test_the_lock_records_its_holder_and_is_released(tmp_path):
    lock = FolderLock(tmp_path / "run")
    assert lock.acquire() is None and lock.held
    holder = json.loads((tmp_path / "run" / LOCK_FILE).read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and "T" in holder["started"]
    lock.release()
    assert not (tmp_path / "run" / LOCK_FILE).exists() and not lock.held
    lock.release()  # twice: no error


def test_a_second_lock_on_the_folder_is_refused_naming_the_first(tmp_path):
    first = FolderLock(tmp_path)
    assert first.acquire() is None
    second = FolderLock(tmp_path)
    message = second.acquire()
    assert message.startswith(f"{tmp_path} is in use by another nlpcli run (pid {os.getpid()} on "
                              f"{socket.gethostname()}, since ")
    second.release()  # not held: the first run's lock stays
    assert (tmp_path / LOCK_FILE).is_file()


def test_a_live_or_remote_holder_keeps_its_lock(tmp_path):
    for holder in ({"pid": os.getppid(), "host": socket.gethostname(), "started": "2026-01-01T00:00:00"},
                   {"pid": DEAD_PID, "host": "another-machine", "started": "2026-01-01T00:00:00"}):
        (tmp_path / LOCK_FILE).write_text(json.dumps(holder))
        message = FolderLock(tmp_path).acquire()
        assert f"(pid {holder['pid']} on {holder['host']}, since 2026-01-01T00:00:00)" in message
        assert json.loads((tmp_path / LOCK_FILE).read_text()) == holder  # someone else's lock is left alone


@pytest.mark.parametrize("content", [json.dumps({"pid": DEAD_PID, "host": socket.gethostname()}).encode(),
                                     b'{"pid": 1', b"\xff\xfe{\x00", b"[1, 2]", b'{"pid": "x"}'])
def test_a_lock_of_a_dead_process_or_a_torn_lock_is_taken_over(tmp_path, capsys, content):
    """Torn: cut short, not UTF-8, not an object, a pid that is no number."""
    (tmp_path / LOCK_FILE).write_bytes(content)
    lock = FolderLock(tmp_path)
    assert lock.acquire() is None and lock.held
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert "no longer runs; taking it over" in " ".join(capsys.readouterr().err.split())


def test_alive():
    assert _alive(os.getpid()) and _alive(os.getppid())
    assert not _alive(DEAD_PID) and not _alive(0) and not _alive(-1)


def test_an_output_folder_that_cannot_be_created_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a file where a folder above the output folder should be
    assert create(blocker / "run").startswith(f"--output-dir {blocker / 'run'}: cannot create it (")
    assert create(tmp_path / "a" / "b") is None and (tmp_path / "a" / "b").is_dir()
