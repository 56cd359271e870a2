"""Preparing the data at scale: --preprocessing-workers gives the same features as one process, and a second
run of the same data and settings reuses datasets' cached features (run.json says which)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from nlpcli.config_layers import resolve_config
from nlpcli.runner import run, splits
from nlpcli.sources.data import map_workers
from nlpcli.tasks import get_task

SAMPLES = Path(__file__).resolve().parents[1] / "nlpcli" / "samples"


def _build(task_name: str, values: dict) -> run.Built:
    from accelerate import PartialState

    task = get_task(task_name)
    cfg = resolve_config(task.config_class, task_name, cli_values={"model": "tiny", **values})
    run.quiet_libraries()
    with tempfile.TemporaryDirectory() as output_dir:
        return run.build(task, cfg, PartialState(cpu=True), splits.read(task, cfg), Path(output_dir))


def test_workers_apply_to_whole_splits_only():
    import datasets

    class Cfg:
        preprocessing_workers = 3

    whole = datasets.Dataset.from_dict({"text": ["a"]})
    assert map_workers(Cfg, whole) == {"num_proc": 3}
    assert map_workers(Cfg, whole.to_iterable_dataset()) == {}  # a stream is prepared as it is read
    Cfg.preprocessing_workers = None
    assert map_workers(Cfg, whole) == {}


@pytest.mark.slow
def test_two_workers_make_the_features_of_one_and_a_second_run_reuses_them(tmp_path):
    train = tmp_path / "train.jsonl"  # a file of its own: no other test has cached its features
    shutil.copy(SAMPLES / "conll2003_sample.jsonl", train)
    options = {"train_file": str(train), "text_column": "words", "label_column": "ner"}
    first = _build("ner", {**options, "preprocessing_workers": 2})
    assert first.features_cache == {"train": "made", "validation": "made"}
    assert len(first.prepared.train.cache_files) == 2  # one shard per worker
    again = _build("ner", {**options, "preprocessing_workers": 2})
    assert again.features_cache == {"train": "reused", "validation": "reused"}
    single = _build("ner", options)
    for split in ("train", "eval"):
        assert getattr(single.prepared, split).to_list() == getattr(first.prepared, split).to_list()
