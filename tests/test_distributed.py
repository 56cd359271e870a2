"""Scale-out through torchrun and accelerate launch: DDP over gloo on one CPU box, for both loops, and the
evaluation (validation and test sets) 1 and 2 processes agree on."""

from __future__ import annotations

import json

import pytest

from conftest import accelerate_launch, assert_agree, front_matter, read_json, read_jsonl, run_processes, torchrun

pytestmark = pytest.mark.e2e  # every test here trains or evaluates a model


UNLABELLED = '{"tokens": ["Bill", "met", "Paris"]}\n{"tokens": ["CHICAGO", "AT", "ATLANTA"]}\n'


def labelled_sample() -> str:
    """The ner sample's 10 sentences under the columns a run reads: a test set with labels."""
    from nlpcli.sources.data import SAMPLES_DIR

    return ((SAMPLES_DIR / "conll2003_sample.jsonl").read_text().replace('"words"', '"tokens"')
            .replace('"ner"', '"ner_tags"'))


@pytest.mark.parametrize("loop", ["trainer", "accelerate"])
def test_ddp_training_on_cpu_evaluates_as_one_process_does(tmp_path, loop):
    """The Trainer loop under torchrun; the Accelerate loop under `accelerate launch` with the shipped DDP config.
    Then the model they trained, evaluated by one process (--eval-only, in this process): the same metrics and the
    same rows, written once and in data order. 7 validation examples, 2 per device: the processes' last step is
    uneven and gets a duplicated sample. The Trainer run's test set has no labels (predictions only), the
    Accelerate run's has (test_* metrics too). The Trainer run also asks for --push-to-hub, which fails offline
    after the local save: one model card and one push message, from the main process. Both loops evaluate before
    training, and both end by checking that the processes hold the same weights (a Trainer asked to evaluate
    before `train()` once left the model without its DDP wrapper: each process trained alone), with batches run as
    length-sorted pieces (--length-split 16: several forward passes of the DDP model before one backward pass)."""
    out = tmp_path / loop
    test_file = tmp_path / "test.jsonl"
    test_file.write_text(UNLABELLED if loop == "trainer" else labelled_sample())
    evaluation = ("--dataset", "sample", "--max-eval-samples", "7", "--eval-batch-size", "2", "--test-file", test_file)
    args = ("ner", "--model", "tiny", "--max-steps", "2", "--batch-size", "2", "--loop", loop, "--logging-steps", "1",
            "--eval-steps", "1", "--length-split", "16", *evaluation, "--output-dir", out)
    if loop == "trainer":
        result = torchrun(2, *args, "--push-to-hub")
        assert result.returncode != 0 and "exitcode  : 2" in result.stderr  # rank 0 ends with exit 2 after the save
        assert result.stderr.count("--push-to-hub: not pushed") == 1  # the main process speaks, once
        assert front_matter(out / "README.md")["hyperparameters"]["world_size"] == 2
        assert (out / "model.safetensors").is_file()
    else:
        result = accelerate_launch("multi_gpu", 2, *args)
        assert result.returncode == 0, result.stderr[-3000:]
    rows = {name: read_jsonl(out / name) for name in ("eval_predictions.jsonl", "test_predictions.jsonl")}
    assert [row["tokens"] for row in rows["test_predictions.jsonl"]] == [
        json.loads(line)["tokens"] for line in test_file.read_text().splitlines()]
    assert len(rows["eval_predictions.jsonl"]) == 7
    info = read_json(out / "run.json")
    assert (info["world_size"], info["distributed"], info["precision"]) == (2, "MULTI_CPU", "fp32")
    assert (info["eval_samples"], info["test_samples"]) == (7, 10 if loop == "accelerate" else 2)
    history = read_jsonl(out / "log_history.jsonl")  # written once, by the main process
    assert [(r["step"], "loss" in r) for r in history] == [(0, False), (1, True), (1, False), (2, True), (2, False)]
    assert info["train_samples_seen"] == 2 * 2 * 2  # 2 steps x 2 processes x batch 2
    assert info["length_split"]["batches_split"] >= 1  # two forward passes before one backward pass under DDP
    assert "find_unused_parameters" not in result.stderr  # DDP told every parameter gets a gradient
    metrics = read_json(out / "metrics.json")
    assert "eval_overall_f1" in metrics and (out / "config.json").is_file()
    assert result.stdout.count("ner model=tiny") == 1  # only the main process prints
    assert result.stdout.count("saved to") == (loop == "accelerate")  # the Trainer run ends with its push's failure
    one = tmp_path / "one"
    run_processes(1, "ner", "--model", out, "--eval-only", "--loop", loop, *evaluation, "--output-dir", one)
    evaluated = read_json(one / "metrics.json")
    assert read_json(one / "run.json")["world_size"] == 1
    assert set(evaluated) <= set(metrics)
    assert any(key.startswith("test_") for key in evaluated) == (loop == "accelerate")  # labelled: test metrics
    assert_agree(evaluated, {key: metrics[key] for key in evaluated})  # the counts and tags; the loss within 1e-6
    assert {name: read_jsonl(one / name) for name in rows} == rows  # the same rows (words, tags), in data order
    assert evaluated["eval_LOC_number"] + evaluated["eval_PER_number"] + evaluated["eval_ORG_number"] > 0
