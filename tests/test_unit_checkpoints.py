"""runner.checkpoints on folders made by hand: which checkpoints count, rotation, staging, clean-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlpcli.runner import checkpoints


def make(output_dir: Path, step: int, complete: bool = True, state: str = "trainer_state.json") -> Path:
    """A checkpoint-<step> folder; complete ones hold their loop's last-written state file."""
    path = output_dir / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights")
    if complete:
        (path / state).write_text("{}")
    return path


def names(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_by_step_orders_numerically_and_ignores_other_names(tmp_path):
    for step in (10, 9, 100):
        make(tmp_path, step)
    (tmp_path / "checkpoint-best").mkdir()  # not a step
    (tmp_path / "checkpoint-7").write_text("a file, not a folder")
    (tmp_path / "other-3").mkdir()
    assert names(checkpoints.by_step(tmp_path)) == ["checkpoint-9", "checkpoint-10", "checkpoint-100"]
    assert checkpoints.by_step(tmp_path / "missing") == []
    assert checkpoints.latest_complete(tmp_path / "missing") is None


@pytest.mark.parametrize("state", checkpoints.COMPLETION_FILES)
def test_a_checkpoint_is_complete_once_its_state_file_is_written(tmp_path, state):
    done = make(tmp_path, 2, state=state)  # trainer_state.json (Trainer) or nlpcli_state.json (Accelerate)
    assert checkpoints.is_complete(done)
    torn = make(tmp_path, 4, complete=False)  # weights written, state file not yet
    assert not checkpoints.is_complete(torn)
    (torn / "trainer_state.json").mkdir()  # a folder of that name is not the file
    assert not checkpoints.is_complete(torn)


def test_an_incomplete_checkpoint_never_counts_even_when_newest(tmp_path):
    make(tmp_path, 2)
    make(tmp_path, 4, state="nlpcli_state.json")
    make(tmp_path, 6, complete=False)
    assert names(checkpoints.complete(tmp_path)) == ["checkpoint-2", "checkpoint-4"]
    assert checkpoints.latest_complete(tmp_path) == tmp_path / "checkpoint-4"
    only_torn = tmp_path / "torn"
    make(only_torn, 8, complete=False)
    assert checkpoints.complete(only_torn) == [] and checkpoints.latest_complete(only_torn) is None


def test_remove_incomplete_deletes_torn_checkpoints_and_staging_folders_only(tmp_path, capsys):
    make(tmp_path, 2)
    make(tmp_path, 4, complete=False)
    staged = checkpoints.staging_folder(tmp_path / "checkpoint-6")
    (staged / "checkpoint-6").mkdir(parents=True)
    (tmp_path / "metrics.json").write_text("{}")  # not a checkpoint: left alone
    checkpoints.remove_incomplete(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2", "metrics.json"]
    err = " ".join(capsys.readouterr().err.split())
    assert f"{tmp_path / 'checkpoint-4'} is incomplete" in err and "checkpoint-2" not in err
    checkpoints.remove_incomplete(tmp_path / "missing")  # no folder yet: nothing to do, no error


def test_staging_folder_is_a_hidden_sibling(tmp_path):
    staged = checkpoints.staging_folder(tmp_path / "checkpoint-12")
    assert staged == tmp_path / ".checkpoint-12.partial"
    (staged / "checkpoint-12").mkdir(parents=True)
    (staged / "checkpoint-12" / "trainer_state.json").write_text("{}")  # written whole, not yet renamed
    assert checkpoints.by_step(tmp_path) == []  # a staged checkpoint is none until renamed into place
    (staged / "checkpoint-12").rename(tmp_path / "checkpoint-12")
    assert checkpoints.latest_complete(tmp_path) == tmp_path / "checkpoint-12"


def surviving(tmp_path: Path) -> list[str]:
    return names(checkpoints.by_step(tmp_path))


@pytest.mark.parametrize(
    ("limit", "keep", "kept"),
    [
        (None, None, [2, 4, 6, 8]),  # no --save-total-limit: all stay
        (2, None, [6, 8]),
        (1, None, [8]),
        (5, None, [2, 4, 6, 8]),
        (2, 2, [2, 8]),  # the best counts towards the limit
        (3, 4, [4, 6, 8]),  # best among the newest: nothing more spared
        (1, 2, [2, 8]),  # limit 1: the best and the newest (to resume from) both stay
        (1, 8, [8]),  # the best is the newest
        (2, 99, [6, 8]),  # a best step with no checkpoint spares nothing
    ],
)
def test_keep_newest_rotation(tmp_path, limit, keep, kept):
    for step in (2, 4, 6, 8):
        make(tmp_path, step)
    checkpoints.keep_newest(tmp_path, limit, keep=keep)
    assert surviving(tmp_path) == [f"checkpoint-{s}" for s in kept]


def test_keep_newest_neither_counts_nor_deletes_incomplete_checkpoints(tmp_path):
    make(tmp_path, 2)
    make(tmp_path, 4)
    make(tmp_path, 6, complete=False)  # being written by another process, or torn
    checkpoints.keep_newest(tmp_path, 1)
    assert surviving(tmp_path) == ["checkpoint-4", "checkpoint-6"]
