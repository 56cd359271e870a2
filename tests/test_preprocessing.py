"""Preparing the data at scale: --preprocessing-workers gives the same features as one process, and a second
run of the same data and settings reuses datasets' cached features (run.json says which)."""

from __future__ import annotations

import dataclasses
import json
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



def test_rows_read_a_batch_at_a_time_in_data_order(monkeypatch):
    import datasets

    from nlpcli.sources import data

    monkeypatch.setattr(data, "READ_BATCH", 2)
    whole = datasets.Dataset.from_dict({"a": list(range(5)), "b": list("vwxyz"), "c": [[1]] * 5})
    picked = whole.select([4, 0, 3, 1, 2])  # an indices mapping over the table, as a filter or shuffle leaves
    assert list(data.rows_of(picked, "b", "a")) == [("z", 4), ("v", 0), ("y", 3), ("w", 1), ("x", 2)]
    assert list(data.values_of(picked, "a")) == [4, 0, 3, 1, 2]
    assert list(data.rows_of(whole, "a", "a"))[:2] == [(0, 0), (1, 1)]

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


SAMPLE_FILES = {"translate": ("wmt16_en_ro_sample.jsonl", {"source_lang": "en", "target_lang": "ro"}),
                "summarize": ("xsum_sample.jsonl", {}),
                "ner": ("conll2003_sample.jsonl", {"text_column": "words", "label_column": "ner"})}


@pytest.mark.parametrize("task_name", sorted(SAMPLE_FILES))
def test_a_later_run_with_other_training_options_reuses_the_cached_features(tmp_path, monkeypatch, task_name):
    """translate and summarize clean their pairs in datasets' cache too (their features were in memory only)."""
    from nlpcli.tasks.summarize import SummarizeTask

    monkeypatch.setattr(SummarizeTask, "run_facts", lambda self, cfg: {})  # not nltk's import: not tested here
    sample, options = SAMPLE_FILES[task_name]
    train = tmp_path / "train.jsonl"  # a file of its own: no other test has cached its features
    shutil.copy(SAMPLES / sample, train)
    options = {**options, "train_file": str(train)}
    first = _build(task_name, options)
    assert first.features_cache == {"train": "made", "validation": "made"}
    again = _build(task_name, {**options, "learning_rate": 0.05})  # an option that does not shape the features
    assert again.features_cache == {"train": "reused", "validation": "reused"}
    assert again.prepared.train.to_list() == first.prepared.train.to_list()
    assert len(first.prepared.train) + len(first.prepared.eval) == 10  # the sample's 10 records, 1 held out


@pytest.mark.slow
def test_two_workers_clean_translation_pairs_as_one_process_does(tmp_path):
    rows = [json.loads(line) for line in (SAMPLES / "wmt16_en_ro_sample.jsonl").read_text().splitlines()]
    rows[3]["translation"]["ro"] = " "  # bad records on both sides of the middle, where the shards meet
    rows[7]["translation"]["en"] = None
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    options = {"train_file": str(train), "validation_file": str(train), "source_lang": "en", "target_lang": "ro",
               "skip_bad_records": True, "min_target_words": 7}
    task = get_task("translate")
    cfg = resolve_config(task.config_class, "translate", cli_values={"model": "tiny", **options})
    single = splits.read(task, cfg)
    shared = splits.read(task, dataclasses.replace(cfg, preprocessing_workers=2))
    assert shared.data_report == single.data_report
    assert single.data_report["train"] == {"records": 10, "bad_records_skipped": 2, "short_targets_dropped": 3,
                                           "kept": 5}
    assert shared.raw["train"].to_list() == single.raw["train"].to_list()
    kept = [row["translation"] for index, row in enumerate(rows) if index not in (3, 7)]
    assert [pair["source"] for pair in single.raw["train"]] == [pair["en"] for pair in kept
                                                                 if len(pair["ro"].split()) >= 7]


# mlm and qa: (the task, its options, an option that shapes the features and one of its other values)
SHAPED = {"mlm": ("mlm", {}, {"chunk_size": 64}),
          "qa": ("qa", {"field": "data", "version_2_with_negative": True, "max_length": 96, "doc_stride": 32},
                 {"doc_stride": 16})}
SHAPED["qa nested"] = SHAPED["qa"]  # the official SQuAD layout, flattened first


def shaped_train_file(tmp_path: Path, case: str) -> Path:
    """The case's sample in a file of its own (no other test has cached its features): the wiki text for mlm, the
    squad sample for qa (flat records, or nested as the official files are: articles -> paragraphs -> qas)."""
    if case == "mlm":
        return Path(shutil.copy(SAMPLES / "wiki_00.txt", tmp_path / "train.txt"))
    records = json.loads((SAMPLES / "squad_v2_sample.json").read_text(encoding="utf-8"))["data"]
    if case == "qa nested":
        contexts: dict[str, list] = {}
        for record in records:
            answers = record["answers"]
            contexts.setdefault(record["context"], []).append(
                {"id": record["id"], "question": record["question"],
                 "answers": [{"text": text, "answer_start": start}
                             for text, start in zip(answers["text"], answers["answer_start"], strict=True)]})
        records = [{"title": "sample", "paragraphs": [{"context": context, "qas": qas}
                                                      for context, qas in contexts.items()]}]
    train = tmp_path / "train.json"
    train.write_text(json.dumps({"data": records}), encoding="utf-8")
    return train


@pytest.mark.parametrize("case", sorted(SHAPED))
def test_a_later_run_reuses_the_features_unless_an_option_that_shapes_them_changed(tmp_path, case):
    """mlm's chunks (and masked validation chunks) and qa's windows: reused by a run that changes only the learning
    rate, made again by one that changes how they are cut."""
    task_name, options, shaping = SHAPED[case]
    options = {**options, "train_file": str(shaped_train_file(tmp_path, case))}
    first = _build(task_name, options)
    assert first.features_cache == {"train": "made", "validation": "made"}
    again = _build(task_name, {**options, "learning_rate": 0.05})
    assert again.features_cache == {"train": "reused", "validation": "reused"}
    assert again.prepared.eval.to_list() == first.prepared.eval.to_list()
    reshaped = _build(task_name, {**options, **shaping})
    assert reshaped.features_cache == {"train": "made", "validation": "made"}
    assert len(reshaped.prepared.train) != len(first.prepared.train)  # cut another way


def test_classify_reuses_its_features_unless_the_truncation_changed(tmp_path):
    """classify's tokenized texts and label ids: reused by a run that changes only the learning rate, made again
    (and shorter) with another --max-length."""
    train = Path(shutil.copy(SAMPLES / "wiki_topics_train.jsonl", tmp_path / "train.jsonl"))
    first = _build("classify", {"train_file": str(train)})
    assert first.features_cache == {"train": "made", "validation": "made"}
    again = _build("classify", {"train_file": str(train), "learning_rate": 0.05})
    assert again.features_cache == {"train": "reused", "validation": "reused"}
    assert again.prepared.eval.to_list() == first.prepared.eval.to_list()
    cut = _build("classify", {"train_file": str(train), "max_length": 8})
    assert cut.features_cache == {"train": "made", "validation": "made"}
    assert max(len(ids) for ids in cut.prepared.train["input_ids"]) == 8 < max(
        len(ids) for ids in first.prepared.train["input_ids"])


@pytest.mark.parametrize(("large", "shown"), [(5, True), (10_000, False)])
def test_tokenizing_large_data_shows_its_progress(tmp_path, monkeypatch, capfd, large, shown):
    """Above LARGE_DATA records the tokenization draws datasets' progress bar ("Tokenizing train"); below, the run's
    output stays quiet. (The classify sample: 160 records, here against thresholds of 5 and 10,000.)"""
    monkeypatch.setattr(run, "LARGE_DATA", large)
    train = Path(shutil.copy(SAMPLES / "wiki_topics_train.jsonl", tmp_path / "train.jsonl"))
    _build("classify", {"train_file": str(train)})
    assert ("Tokenizing train" in capfd.readouterr().err) is shown
