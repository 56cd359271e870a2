"""--overfit-batch: the settings of the check, its verdict and advice, its refusals, and the check itself on every
task with the tiny preset (one loop each, the other loop for two tasks, and a set-up that cannot learn: exit 1).
The checks here run small batches and the steps each needs at 5e-3; README.md measures the defaults (a batch of 8,
200 steps at 2e-3) on every task in both loops."""

from __future__ import annotations

import json
import math

import pytest
import seqeval.metrics

from conftest import REPO, read_json, read_jsonl, run_cli
from nlpcli.config import origin_lines, value_origins
from nlpcli.config_args import with_bare_values
from nlpcli.config_layers import resolve_config
from nlpcli.errors import UserError
from nlpcli.metrics.kinds import best_bound, near_best
from nlpcli.runner import overfit
from nlpcli.tasks import get_task
from nlpcli.tasks.ner import NerConfig

# ---------------------------------------------------------------- the settings of a check


def test_a_bare_overfit_batch_means_8_examples():
    assert with_bare_values(["ner", "--overfit-batch"]) == ["ner", "--overfit-batch", "8"]
    assert with_bare_values(["ner", "--overfit-batch", "--max-steps", "5"]) == [
        "ner", "--overfit-batch", "8", "--max-steps", "5"]
    assert with_bare_values(["ner", "--overfit-batch", "4"]) == ["ner", "--overfit-batch", "4"]


def ner_config(**options):
    return resolve_config(NerConfig, "ner", None, {"model": "tiny", "dataset": "sample", **options})


def test_configure_one_batch_a_bare_optimizer_and_what_the_user_gave_stays():
    plain = ner_config()
    assert overfit.configure(plain) is plain  # no check, no change
    assert overfit.configure(ner_config(overfit_batch=4)).learning_rate == overfit.RANDOM_WEIGHTS_RATE  # tiny
    cfg = overfit.configure(ner_config(overfit_batch=4, learning_rate=1e-3, max_grad_norm=0.5))
    assert (cfg.max_train_samples, cfg.max_eval_samples, cfg.batch_size, cfg.eval_batch_size) == (4, 4, 4, 4)
    assert (cfg.max_steps, cfg.logging_steps, cfg.gradient_accumulation_steps) == (overfit.OVERFIT_STEPS,
                                                                                  overfit.OVERFIT_STEPS // 4, 1)
    assert (cfg.lr_scheduler, cfg.warmup_ratio, cfg.warmup_steps) == ("constant", 0.0, 0)  # not the preset's 0.1
    assert (cfg.learning_rate, cfg.max_grad_norm) == (1e-3, 0.5)  # given on the command line: kept
    assert cfg.evaluation_strategy == cfg.saving_strategy == "no" and not cfg.load_best_model_at_end
    origins = value_origins(cfg)
    assert origins["max_steps"] == origins["lr_scheduler"] == "--overfit-batch" and origins["model"] == "command line"
    assert origin_lines(cfg)[-1].startswith("--overfit-batch: ")  # the run header says what the check changed
    given = overfit.configure(ner_config(overfit_batch=2, max_steps=7, logging_steps=3, lr_scheduler="linear"))
    assert (given.max_steps, given.logging_steps, given.lr_scheduler, given.max_grad_norm) == (7, 3, "linear", 0.0)


@pytest.mark.parametrize("clash, options", [
    ("--eval-only", {"eval_only": True}), ("--resume", {"resume": "auto"}), ("--push-to-hub", {"push_to_hub": True}),
    ("--test-file / --do-predict", {"do_predict": True}),
])
def test_what_an_overfit_check_does_not_go_with(clash, options):
    overfit.check(ner_config(**options))  # fine without the check
    with pytest.raises(UserError, match=f"does not go with {clash}"):
        overfit.check(ner_config(overfit_batch=8, **options))


def test_a_refused_check_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    result = run_cli("ner", "--model", "tiny", "--dataset", "sample", "--overfit-batch", "--resume", "--output-dir",
                     out)
    assert result.exit_code == 2 and "--overfit-batch trains a new model on one batch" in result.output
    assert not out.exists()


# ---------------------------------------------------------------- the verdict


def test_near_the_best_on_each_scale():
    assert near_best("eval_overall_f1", 0.9, 1.0, 0.1) and not near_best("eval_overall_f1", 0.89, 1.0, 0.1)
    assert near_best("eval_bleu", 90.0, 100.0, 0.1) and not near_best("eval_bleu", 89.9, 100.0, 0.1)
    assert near_best("eval_perplexity", 1.1, 1.0, 0.1) and not near_best("eval_perplexity", 1.11, 1.0, 0.1)
    assert near_best("eval_loss", 0.1, 0.0, 0.1) and not near_best("eval_loss", 0.11, 0.0, 0.1)
    assert not near_best("eval_loss", math.nan, 0.0, 0.1) and not near_best("eval_bleu", None, 100.0, 0.1)
    assert best_bound("eval_exact_match", 100.0, 0.1) == 90.0 and best_bound("eval_loss", 0.0, 0.1) == 0.1


def verdict(task: str, metrics: dict, history: list | None = None) -> dict:
    cfg = overfit.configure(ner_config(overfit_batch=8))
    return overfit.judge(get_task(task), cfg, metrics, history or [])


def test_the_verdict_reads_the_loss_and_the_task_metrics_and_advises():
    learnt = verdict("ner", {"eval_loss": 0.01, "eval_loss_before": 2.2, "eval_overall_f1": 1.0,
                             "eval_overall_accuracy": 0.95, "eval_PER_f1": 0.2})
    assert learnt["overfits"] and learnt["advice"] == []
    assert (learnt["batch"], learnt["steps"]) == (8, overfit.OVERFIT_STEPS)
    assert [(c["metric"], c["before"], c["after"], c["passed"]) for c in learnt["checks"]] == [
        ("eval_loss", 2.2, 0.01, True), ("eval_overall_f1", None, 1.0, True),
        ("eval_overall_accuracy", None, 0.95, True)]
    lines = overfit.verdict_lines(learnt)
    assert "eval_loss: 2.2 -> 0.01  near 0 (at most 0.1)" in lines[1] and "verdict: it overfits" in lines[-1]

    def advised(metrics: dict, history: list | None = None) -> str:
        found = verdict("ner", metrics, history)
        assert not found["overfits"] and "nlpcli inspect ner" in found["advice"][-1]
        return found["advice"][0]

    assert "too low" in advised({"eval_loss": 2.0, "eval_loss_before": 2.2, "eval_overall_f1": 0.0})
    assert "too high" in advised({"eval_loss": 3.0, "eval_loss_before": 2.2, "eval_overall_f1": 0.0})
    assert "not finite" in advised({"eval_loss": math.nan, "eval_loss_before": 2.2, "eval_overall_f1": 0.0})
    assert "more steps" in advised({"eval_loss": 0.5, "eval_loss_before": 2.2, "eval_overall_f1": 0.95})
    assert "misaligned" in advised({"eval_loss": 0.05, "eval_loss_before": 2.2, "eval_overall_f1": 0.5})
    # no evaluation before training: the loss starts from the first logged training loss
    assert "too low" in advised({"eval_loss": 2.0, "eval_overall_f1": 0.0}, [{"step": 1, "loss": 2.1}])


def test_an_evaluation_without_a_loss_reports_the_training_loss_and_judges_the_metrics():
    history = [{"step": 0, "eval_exact_match": 0.0}, {"step": 10, "loss": 5.9}, {"step": 20, "loss": 0.4}]
    found = verdict("qa", {"eval_exact_match": 100.0, "eval_f1": 100.0}, history)
    assert found["overfits"] and found["checks"][0] == {
        "metric": "loss", "before": 5.9, "after": 0.4, "best": 0.0, "bound": 0.1, "passed": None}
    assert "(reported, not judged)" in overfit.verdict_lines(found)[1]
    missed = verdict("qa", {"eval_exact_match": 87.5, "eval_f1": 87.5}, history)
    assert not missed["overfits"] and "more steps" in missed["advice"][0]


# ---------------------------------------------------------------- the check, on every task


TINY = ("--model", "tiny", "--no-eval-before", "--learning-rate", "5e-3")
SAMPLE = ("--dataset", "sample")
CHEAP = {  # small batches and lengths, and the steps each needs at 5e-3: the checks stay cheap
    "ner": [*SAMPLE, "--overfit-batch", "4", "--max-steps", "30"],
    "mlm": [*SAMPLE, "--overfit-batch", "4", "--chunk-size", "32", "--max-steps", "40"],
    "clm": [*SAMPLE, "--overfit-batch", "4", "--context-length", "32", "--max-steps", "60"],
    "translate": [*SAMPLE, "--overfit-batch", "4", "--target-lang", "ro", "--max-steps", "40"],
    "summarize": [*SAMPLE, "--overfit-batch", "4", "--max-length", "64", "--max-target-length", "16", "--max-steps",
                  "80"],
    "qa": ["--overfit-batch", "4", "--max-steps", "40"],  # + four questions on four contexts (`distinct_contexts`)
    "classify": [*SAMPLE, "--overfit-batch", "4", "--max-steps", "30"],
}


def distinct_contexts(folder) -> list[str]:
    """The bundled qa sample's first answerable question on each of its contexts, as --train-file and
    --validation-file. (The sample asks five questions about one context; telling them apart takes the tiny
    model 200 steps at 2e-3, the check's own settings, measured in README.md: too long for the suite.)"""
    records, seen = [], set()
    for record in json.loads((REPO / "nlpcli" / "samples" / "squad_v2_sample.json").read_text())["data"]:
        if record["answers"]["text"] and record["context"] not in seen:
            seen.add(record["context"])
            records.append(record)
    path = folder / "questions.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return ["--train-file", str(path), "--validation-file", str(path)]


@pytest.mark.e2e
@pytest.mark.parametrize("task, loop", [*((task, "trainer") for task in CHEAP), ("mlm", "accelerate"),
                                        ("translate", "accelerate")])
def test_every_task_overfits_one_batch(tmp_path, task, loop):
    out = tmp_path / "run"
    data = distinct_contexts(tmp_path) if task == "qa" else []
    result = run_cli(task, *TINY, *CHEAP[task], *data, "--loop", loop, "--output-dir", out)
    assert result.exit_code == 0, result.output
    assert "verdict: it overfits" in result.output
    check = read_json(out / "run.json")["overfit"]
    assert check["overfits"] and all(c["passed"] is not False for c in check["checks"])
    metrics = read_json(out / "metrics.json")
    for entry in check["checks"]:
        if entry["passed"] is not None:
            assert entry["after"] == pytest.approx(metrics[entry["metric"]])
    assert not (out / "README.md").exists()  # no model card: the model learnt one batch by heart
    assert not list(out.glob("checkpoint-*"))


@pytest.mark.e2e
def test_the_check_evaluates_before_training_on_the_same_batch_and_a_set_up_that_cannot_learn_exits_1(tmp_path):
    out = tmp_path / "run"
    result = run_cli("ner", "--model", "tiny", "--dataset", "sample", "--overfit-batch", "2", "--max-steps", "2",
                     "--learning-rate", "1e-7", "--output-dir", out)
    assert result.exit_code == 1, result.output
    assert "verdict: it does not overfit" in result.output and "the learning rate may be too low" in result.output
    assert "nlpcli inspect ner" in result.output
    check = read_json(out / "run.json")["overfit"]
    assert not check["overfits"] and (check["batch"], check["steps"], check["learning_rate"]) == (2, 2, 1e-7)
    # evaluated before and after training on the batch it trained on: the same two sentences
    before, after = read_jsonl(out / "eval_predictions_before.jsonl"), read_jsonl(out / "eval_predictions.jsonl")
    assert [row["tokens"] for row in before] == [row["tokens"] for row in after] and len(after) == 2
    metrics = read_json(out / "metrics.json")
    assert metrics["eval_loss_before"] == check["checks"][0]["before"]
    references, predictions = [r["reference"] for r in after], [r["prediction"] for r in after]
    assert metrics["eval_overall_f1"] == pytest.approx(seqeval.metrics.f1_score(references, predictions))
    saved = read_json(out / "run.json")
    assert saved["eval_before"] is True and saved["train_samples"] == 2
