"""Scale-out through torchrun and accelerate launch: DDP over gloo on one CPU box, for both loops, and the
evaluation 1 and 2 processes agree on."""

from __future__ import annotations

import pytest

from conftest import (
    NER_MODEL,
    accelerate_launch,
    assert_agree,
    read_json,
    read_jsonl,
    run_processes,
    torchrun,
    trained_once,
)

pytestmark = pytest.mark.e2e  # every test here trains or evaluates a model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return trained_once(tmp_path_factory, "ner", *NER_MODEL)


def test_eval_only_gives_identical_metrics_with_1_and_2_processes(trained, tmp_path):
    from nlpcli.sources.data import SAMPLES_DIR

    test_file = tmp_path / "test.jsonl"  # the sample's sentences under the columns the run reads
    test_file.write_text((SAMPLES_DIR / "conll2003_sample.jsonl").read_text().replace('"words"', '"tokens"')
                         .replace('"ner"', '"ner_tags"'))
    metrics, files = {}, {}
    for nproc in (1, 2):
        out = tmp_path / f"eval{nproc}"
        # 7 examples, 2 per device: the last step of 2 processes is uneven and gets a duplicated sample
        run_processes(nproc, "ner", "--model", trained, "--eval-only", "--dataset", "sample", "--max-eval-samples",
                      "7", "--eval-batch-size", "2", "--output-dir", out, "--test-file", test_file)
        metrics[nproc] = read_json(out / "metrics.json")
        files[nproc] = [read_jsonl(out / name) for name in ("eval_predictions.jsonl", "test_predictions.jsonl")]
        info = read_json(out / "run.json")
        assert info["world_size"] == nproc and info["eval_samples"] == 7 and info["test_samples"] == 10
    assert_agree(metrics[1], metrics[2])  # the same counts and tags; the loss within a relative 1e-6
    assert files[1] == files[2]  # the same rows (words, tags), in data order, written once
    assert len(files[1][0]) == 7 and len(files[1][1]) == 10
    assert metrics[1]["eval_LOC_number"] + metrics[1]["eval_PER_number"] + metrics[1]["eval_ORG_number"] > 0


@pytest.mark.parametrize("loop", ["trainer", "accelerate"])
def test_ddp_training_on_cpu(tmp_path, loop):
    """The Trainer loop under torchrun; the Accelerate loop under `accelerate launch` with the shipped DDP config."""
    out = tmp_path / loop
    test_file = tmp_path / "test.jsonl"  # no labels: predictions only
    test_file.write_text('{"tokens": ["Bill", "met", "Paris"]}\n{"tokens": ["CHICAGO", "AT", "ATLANTA"]}\n')
    args = ("ner", "--model", "tiny", "--dataset", "sample", "--max-steps", "2", "--batch-size", "2", "--loop", loop,
            "--logging-steps", "1", "--eval-steps", "1", "--output-dir", out, "--test-file", test_file)
    result = torchrun(2, *args) if loop == "trainer" else accelerate_launch("multi_gpu", 2, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [row["tokens"] for row in read_jsonl(out / "test_predictions.jsonl")] == [["Bill", "met", "Paris"],
                                                                                     ["CHICAGO", "AT", "ATLANTA"]]
    info = read_json(out / "run.json")
    assert (info["world_size"], info["distributed"], info["precision"]) == (2, "MULTI_CPU", "fp32")
    history = read_jsonl(out / "log_history.jsonl")  # written once, by the main process
    assert [(r["step"], "loss" in r) for r in history] == [(0, False), (1, True), (1, False), (2, True), (2, False)]
    assert read_json(out / "run.json")["train_samples_seen"] == 2 * 2 * 2  # 2 steps x 2 processes x batch 2
    assert "find_unused_parameters" not in result.stderr  # DDP told every parameter gets a gradient
    assert "eval_overall_f1" in read_json(out / "metrics.json")
    assert (out / "config.json").is_file()
    assert result.stdout.count("saved to") == 1  # only the main process prints
