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
    weights(path / "model.safetensors")
    (path / "trainer_state.json").write_text("{}")
    return path


def weights(path: Path) -> None:
    import safetensors.torch
    import torch

    safetensors.torch.save_file({"w": torch.arange(64, dtype=torch.float32)}, str(path))


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
    weights(path / "model.safetensors")  # the save completes
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


def whole_checkpoint(path: Path) -> Path:
    """A checkpoint with a file of every kind both loops write: JSON, safetensors, torch files of tensors only
    (optimizer, scheduler) and one that needs more than weights_only reads (the RNG states)."""
    import random

    import numpy as np
    import torch

    make(path.parent, int(path.name.split("-")[1]))
    (path / "nlpcli_record.json").write_text('{"loss_total": 1.5}')
    torch.save({"state": {0: {"exp_avg": torch.ones(32)}}, "param_groups": []}, path / "optimizer.pt")
    torch.save({"last_epoch": 3}, path / "scheduler.pt")
    torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.get_rng_state()},
               path / "rng_state.pth")
    return path


@pytest.mark.parametrize("name", ["trainer_state.json", "nlpcli_record.json", "model.safetensors", "optimizer.pt",
                                  "scheduler.pt", "rng_state.pth"])
def test_a_checkpoint_with_a_truncated_file_is_damaged_and_the_file_is_named(tmp_path, name):
    from nlpcli.files import checkpoint_problem

    path = whole_checkpoint(tmp_path / "checkpoint-4")
    assert checkpoint_problem(path) is None
    data = (path / name).read_bytes()
    (path / name).write_bytes(data[: len(data) // 2])
    problem = checkpoint_problem(path)
    assert problem is not None and str(path / name) in problem and "does not read back" in problem, problem
    (path / name).write_bytes(b"")
    assert checkpoint_problem(path) == f"{path / name} is empty"


def test_a_checkpoint_or_a_model_folder_without_weights_is_damaged(tmp_path):
    from nlpcli.files import checkpoint_problem, model_folder_problem

    path = whole_checkpoint(tmp_path / "checkpoint-4")
    (path / "model.safetensors").unlink()
    assert checkpoint_problem(path) == f"{path} holds no weights file (model.safetensors)"
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert"}')
    assert model_folder_problem(model) == f"{model} holds no weights file (model.safetensors)"
    weights(model / "model.safetensors")
    assert model_folder_problem(model) is None
    (model / "config.json").write_text('{"model_type": ')
    assert "config.json does not read back" in model_folder_problem(model)
    (model / "config.json").write_text('{"model_type": "bert"}')
    (model / "model.safetensors.index.json").write_text('{"weight_map": {"w": "model-00002-of-00002.safetensors"}}')
    assert "lacks model-00002-of-00002.safetensors" in model_folder_problem(model)


def test_resume_skips_a_damaged_newest_checkpoint_naming_it(tmp_path, capsys):
    whole_checkpoint(tmp_path / "checkpoint-2")
    torn = whole_checkpoint(tmp_path / "checkpoint-4")
    (torn / "optimizer.pt").write_bytes((torn / "optimizer.pt").read_bytes()[:100])
    assert checkpoints.latest(tmp_path) == tmp_path / "checkpoint-2"
    assert checkpoints.latest(tmp_path) == tmp_path / "checkpoint-2"
    err = " ".join(capsys.readouterr().err.split())
    assert err.count("checkpoint-4 is damaged, skipping it:") == 1 and "optimizer.pt does not read back" in err
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text("{")
    assert checkpoints.latest(tmp_path) is None  # none whole: --resume starts from the beginning


def test_a_damaged_model_folder_is_refused_by_predict_and_by_model(tmp_path):
    from conftest import run_cli

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert", "architectures": ["BertForTokenClassification"]}')
    refused = run_cli("predict", "ner", str(model), "some text")
    assert refused.exit_code == 2 and "holds no weights file (model.safetensors)" in refused.output, refused.output
    weights(model / "model.safetensors")
    (model / "model.safetensors").write_bytes((model / "model.safetensors").read_bytes()[:40])
    refused = run_cli("predict", "ner", str(model), "some text")
    assert refused.exit_code == 2 and f"{model / 'model.safetensors'} does not read back" in " ".join(
        refused.output.split()), refused.output
    from nlpcli.errors import UserError
    from nlpcli.sources.models import locate

    with pytest.raises(UserError, match="is damaged: .*model.safetensors does not read back"):
        locate(str(model))


def test_a_write_that_failed_for_want_of_space_is_told_from_other_errors():
    """What each writer raises: Python (errno), safetensors (the reason in its message), torch's zip writer (a
    short write, with the stream's error as context), numpy (a short write)."""
    import errno

    from nlpcli.files import write_failure

    def raised_while(context: BaseException, err: BaseException) -> BaseException:
        err.__context__ = context
        return err

    assert write_failure(OSError(errno.ENOSPC, "No space left on device", "/x/optimizer.pt")) == (
        "no space left on the device")
    assert write_failure(OSError(errno.EDQUOT, "Disk quota exceeded")) == "the disk quota is exceeded"
    assert write_failure(RuntimeError("Error while serializing: I/O error: File too large (os error 27)")) == (
        "the file size limit (ulimit -f) was reached")
    assert write_failure(RuntimeError("Error while serializing: I/O error: (os error 28)")) == (
        "no space left on the device")
    short = raised_while(RuntimeError("basic_ios::clear: iostream error"),
                         RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"))
    assert write_failure(short) == "no space left on the device"  # no file size limit set here
    assert write_failure(raised_while(OSError(errno.ENOSPC, "No space left on device"), ValueError("x"))) == (
        "no space left on the device")
    assert write_failure(OSError("100000 requested and 12800 written")) == "no space left on the device"
    for other in (OSError(errno.EACCES, "Permission denied"), RuntimeError("unexpected position"), ValueError()):
        assert write_failure(other) is None


def test_a_run_stopped_by_a_full_disk_removes_the_checkpoint_it_cut_short_and_keeps_the_others(tmp_path):
    import errno

    from nlpcli.runner.disk_full import stopped

    make(tmp_path, 2)
    cut = staged(tmp_path, 4)
    assert stopped(ValueError("not a write"), tmp_path) is None and cut.is_dir()
    refusal = stopped(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    assert refusal.message == (f"saving checkpoint-4 failed (what it had written, {cut}, is removed): no space "
                               "left on the device.")
    assert "checkpoint-2 is the newest" in refusal.hint and "--resume" in refusal.hint
    assert not (tmp_path / ".checkpoints.partial").exists()
    assert [p.name for p in checkpoints.by_step(tmp_path)] == ["checkpoint-2"]
    model = stopped(OSError(errno.EFBIG, "File too large", str(tmp_path / "model.safetensors")), tmp_path)
    assert model.message == (f"writing {tmp_path / 'model.safetensors'} failed: the file size limit (ulimit -f) "
                             "was reached.")
