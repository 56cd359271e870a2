"""runner.checkpoints on folders made by hand: staging, which checkpoints count, rotation, clean-up, and
the weights a checkpoint holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlpcli.runner import checkpoints


def make(output_dir: Path, step: int) -> Path:
    """A checkpoint-<step> folder, as a save puts it in place."""
    path = output_dir / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights")
    (path / "trainer_state.json").write_text("{}")
    return path


def staged(output_dir: Path, step: int) -> Path:
    """A checkpoint-<step> being written (or whose save a crash cut short)."""
    path = checkpoints.staging_folder(output_dir / f"checkpoint-{step}")
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"")
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
    assert checkpoints.latest(tmp_path) == tmp_path / "checkpoint-100"
    assert checkpoints.by_step(tmp_path / "missing") == []
    assert checkpoints.latest(tmp_path / "missing") is None


def test_staging_folder_is_hidden_and_a_staged_checkpoint_never_counts_until_published(tmp_path):
    make(tmp_path, 2)
    path = staged(tmp_path, 12)
    assert path == tmp_path / ".checkpoints.partial" / "checkpoint-12"
    assert checkpoints.latest(tmp_path) == tmp_path / "checkpoint-2"  # the newer one is not there yet
    checkpoints.publish(path, tmp_path / "checkpoint-12")
    assert checkpoints.latest(tmp_path) == tmp_path / "checkpoint-12"
    assert not path.exists()


def test_publish_replaces_a_checkpoint_of_the_same_step(tmp_path):
    old = make(tmp_path, 4)
    (old / "old-only").write_text("")
    new = staged(tmp_path, 4)
    checkpoints.publish(new, old)
    assert sorted(p.name for p in old.iterdir()) == ["model.safetensors"]
    assert list(checkpoints.staging_root(tmp_path).iterdir()) == []  # the replaced one was deleted


def test_discard_takes_the_name_away_before_deleting(tmp_path, monkeypatch):
    """A crash in the middle of deleting leaves no half checkpoint under a checkpoint-<step> name."""
    import shutil

    path = make(tmp_path, 6)
    deleted: list[Path] = []

    def crash(where, ignore_errors=False):
        if Path(where).exists():
            deleted.append(Path(where))
            raise KeyboardInterrupt  # the process dies here
    monkeypatch.setattr(shutil, "rmtree", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.discard(path)
    assert not path.exists() and checkpoints.by_step(tmp_path) == []
    assert deleted == [tmp_path / ".checkpoints.partial" / "checkpoint-6.discarded"]


def test_remove_incomplete_deletes_the_staging_folder_only_and_names_cut_short_saves(tmp_path, capsys):
    make(tmp_path, 2)
    staged(tmp_path, 4)
    discarded = checkpoints.staging_root(tmp_path) / "checkpoint-1.discarded"
    discarded.mkdir()
    (tmp_path / "metrics.json").write_text("{}")  # not a checkpoint: left alone
    checkpoints.remove_incomplete(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2", "metrics.json"]
    err = " ".join(capsys.readouterr().err.split())
    assert f"{checkpoints.staging_root(tmp_path) / 'checkpoint-4'} is incomplete" in err
    assert "checkpoint-2" not in err and "discarded" not in err
    checkpoints.remove_incomplete(tmp_path / "missing")  # no folder yet: nothing to do, no error


def test_remove_staging_root_only_when_empty(tmp_path):
    checkpoints.remove_staging_root(tmp_path)  # absent: nothing to do
    path = staged(tmp_path, 3)
    checkpoints.remove_staging_root(tmp_path)
    assert path.exists()
    path.rename(tmp_path / "checkpoint-3")
    checkpoints.remove_staging_root(tmp_path)
    assert not checkpoints.staging_root(tmp_path).exists()


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
    assert not any(checkpoints.staging_root(tmp_path).glob("*"))  # what rotation took away is gone


def test_keep_newest_neither_counts_nor_deletes_a_checkpoint_being_written(tmp_path):
    make(tmp_path, 2)
    make(tmp_path, 4)
    staged(tmp_path, 6)  # being written by another process, or cut short
    checkpoints.keep_newest(tmp_path, 1)
    assert surviving(tmp_path) == ["checkpoint-4"]
    assert (checkpoints.staging_root(tmp_path) / "checkpoint-6").is_dir()


@pytest.mark.parametrize("file_name", ["model.safetensors", "pytorch_model.bin", "sharded"])
def test_load_weights_loads_what_the_trainer_saved(tmp_path, file_name):
    import torch
    from transformers import BertConfig, BertForTokenClassification

    config = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, num_labels=3)
    torch.manual_seed(0)
    saved = BertForTokenClassification(config)
    if file_name == "sharded":
        saved.save_pretrained(tmp_path, max_shard_size="2KB")
        assert (tmp_path / "model.safetensors.index.json").is_file()
    elif file_name == "pytorch_model.bin":  # older checkpoints
        torch.save(saved.state_dict(), tmp_path / file_name)
    else:
        saved.save_pretrained(tmp_path)
        assert (tmp_path / file_name).is_file()
    torch.manual_seed(1)
    other = BertForTokenClassification(config)
    checkpoints.load_weights(other, tmp_path)
    theirs = saved.state_dict()
    assert all(torch.equal(value, theirs[name]) for name, value in other.state_dict().items())
