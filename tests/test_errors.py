"""Bad input ends with exit code 2 and one message naming the file/line/record; never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import OFFLINE_VARIABLES, REPO, run_cli

GOOD = [
    {"tokens": ["Bill", "Clinton", "visited", "Paris", "."], "ner_tags": ["B-PER", "I-PER", "O", "B-LOC", "O"]},
    {"tokens": ["Angels", "won", "."], "ner_tags": ["B-ORG", "O", "O"]},
]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def good(tmp_path):
    return write_jsonl(tmp_path / "good.jsonl", GOOD)


def ner(*args):
    return run_cli("ner", "--model", "tiny", "--max-steps", "1", *args)


def expect_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_missing_file(tmp_path, good):
    missing = tmp_path / "nope.jsonl"
    expect_error(ner("--train-file", missing, "--validation-file", good), "Data file not found", "nope.jsonl")


def test_malformed_json_line_names_the_line(tmp_path, good):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(GOOD[0]) + "\n" + '{"tokens": ["a"], "ner_tags": ["O"]\n')
    expect_error(ner("--train-file", bad, "--validation-file", good), "bad.jsonl", "line 2", "not valid JSON")


def test_malformed_conll_line_names_the_line(tmp_path, good):
    bad = tmp_path / "bad.conll"
    bad.write_text("Bill B-PER\nClinton I-PER\n\nParis\n")
    expect_error(ner("--train-file", bad, "--validation-file", good), "bad.conll, line 4", "token label")


def test_unknown_column(tmp_path, good):
    expect_error(
        ner("--train-file", good, "--validation-file", good, "--text-column", "words"),
        "no column 'words'", "tokens, ner_tags",
    )


def test_label_not_in_label_list(tmp_path, good):
    dev = write_jsonl(tmp_path / "dev.jsonl", [{"tokens": ["Rome"], "ner_tags": ["B-CITY"]}])
    # without --labels a validation-only label joins the list (with a warning); --labels is a closed list
    labels = "O,B-PER,I-PER,B-LOC,B-ORG"
    expect_error(ner("--train-file", good, "--validation-file", dev, "--labels", labels), "dev.jsonl", "record 1",
                 "'B-CITY'")


def test_words_and_labels_of_different_length(tmp_path, good):
    bad = write_jsonl(tmp_path / "short.jsonl", [{"tokens": ["Rome", "is"], "ner_tags": ["B-LOC"]}])
    expect_error(ner("--train-file", bad, "--validation-file", good), "short.jsonl", "2 words but 1 labels")


def test_empty_data_set(tmp_path, good):
    empty = tmp_path / "empty.conll"
    empty.write_text("\n\n")
    expect_error(ner("--train-file", empty, "--validation-file", good), "empty.conll")


def test_unknown_config_key_and_bad_value(good):
    expect_error(ner("--dataset", "sample", "--set", "learnign_rate=1"), "unknown config key 'learnign_rate'")
    expect_error(ner("--dataset", "sample", "--set", "epochs=many"), "'epochs' must be float")
    expect_error(ner("--dataset", "sample", "--loop", "fast"), "'loop' must be one of trainer, accelerate")


def test_missing_model_folder():
    expect_error(ner("--dataset", "sample", "--model", "./runs/does-not-exist"), "Model folder not found")


def test_checkpoints_are_not_overwritten_without_resume(tmp_path):
    (tmp_path / "checkpoint-3").mkdir()
    (tmp_path / "checkpoint-3" / "trainer_state.json").write_text("{}")  # a complete checkpoint
    expect_error(ner("--dataset", "sample", "--output-dir", tmp_path), "--resume")


@pytest.mark.e2e
def test_unreachable_hub_fails_fast_with_one_paragraph(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_VARIABLES}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"  # nothing listens there: as good as no network
    env["HF_HOME"] = str(tmp_path / "hf")  # an empty cache
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "nlpcli", "ner", "--model", "bert-base-cased", "--dataset", "sample",
         "--output-dir", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )
    elapsed = time.time() - started
    assert result.returncode == 2, result.stderr
    assert "bert-base-cased" in result.stderr and "cannot be reached" in result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < 60  # generous: the point is no 25-45 s retry loop; see benchmarks for timing


def test_hub_data_set_not_cached_while_offline_names_it_and_the_way_out():
    # conftest sets HF_HUB_OFFLINE=1 for the whole suite
    expect_error(
        ner("--dataset", "conll2003"), "Cannot load data set 'conll2003'", "HF_HUB_OFFLINE", "--dataset sample"
    )


def test_hub_model_not_cached_while_offline_suggests_presets():
    expect_error(ner("--dataset", "sample", "--model", "bert-base-cased"), "model 'bert-base-cased'", "--model tiny")


def test_only_train_and_validation_splits_are_kept(tmp_path, good):
    import datasets

    from nlpcli.sources.data import ensure_splits
    from nlpcli.tasks.ner import NerConfig

    split = datasets.Dataset.from_list(GOOD)
    raw = ensure_splits(datasets.DatasetDict({"train": split, "test": split, "unsupervised": split}),
                         NerConfig(), seed=0)
    assert list(raw) == ["train", "validation"]  # test stands in for validation; the rest is left out
