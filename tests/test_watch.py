"""Runs you can watch and steer (both loops): plain log lines off a terminal, log_history.jsonl, TensorBoard,
evaluation and save strategies, best-model selection, early stopping, Trainer pass-through."""

from __future__ import annotations

import math

import pytest

from before_the_loop import stop_before_the_loop
from conftest import read_json, read_jsonl, run_cli

LOOPS = ["trainer", "accelerate"]
# 10 sentences, batch 2: 5 optimizer steps per epoch
SMOKE = ["ner", "--model", "tiny", "--dataset", "sample", "--batch-size", "2", "--learning-rate", "5e-3"]


def evaluations(history: list[dict]) -> list[dict]:
    return [r for r in history if "eval_loss" in r]


def training_lines(history: list[dict]) -> list[dict]:
    return [r for r in history if "loss" in r]


@pytest.mark.e2e
@pytest.mark.parametrize("loop", LOOPS)
def test_piped_output_and_history_have_one_record_per_logging_interval(tmp_path, loop):
    out = tmp_path / "run"
    result = run_cli(*SMOKE, "--loop", loop, "--max-steps", "12", "--logging-steps", "3", "--eval-strategy", "steps",
                     "--eval-steps", "4", "--save-strategy", "no", "--warmup-ratio", "0", "--output-dir", out)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output  # no escape codes off a terminal
    lines = [line for line in result.output.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["3/12", "6/12", "9/12", "12/12"]
    for line in lines:  # whole records: every field on the one line
        for field in ("epoch", "loss", "lr", "samples/s", "eta"):
            assert f" {field} " in line, line
    assert len([line for line in result.output.splitlines() if line.startswith("eval step ")]) == 3

    history = read_jsonl(out / "log_history.jsonl")
    train = training_lines(history)
    assert [r["step"] for r in train] == [3, 6, 9, 12]
    for record in train:
        assert set(record) == {"step", "epoch", "loss", "learning_rate", "grad_norm", "samples_per_second"}
        assert math.isfinite(record["loss"]) and record["grad_norm"] > 0 and record["samples_per_second"] > 0
    assert [r["epoch"] for r in train] == [0.6, 1.2, 1.8, 2.4]
    assert [r["learning_rate"] for r in train] == pytest.approx([5e-3 * (1 - s / 12) for s in (2, 5, 8, 11)])
    assert [r["step"] for r in evaluations(history)] == [0, 4, 8, 12]  # 0: the evaluation before training
    metrics = read_json(out / "metrics.json")
    assert evaluations(history)[-1]["eval_loss"] == metrics["eval_loss"]
    info = read_json(out / "run.json")
    assert info["evaluations"] == 3 and info["checkpoints_written"] == 0
    assert info["train_samples_per_second"] > 0 and info["peak_memory_mb"] > 50 and info["train_runtime_s"] > 0
    # train_loss is the mean step loss over the run: the four logged intervals cover all 12 steps
    assert metrics["train_loss"] == pytest.approx(sum(r["loss"] for r in train) / 4, rel=1e-5)
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # drawn at the end of every run


@pytest.mark.e2e
@pytest.mark.parametrize("loop", LOOPS)
def test_eval_and_save_strategies(tmp_path, loop):
    out = tmp_path / "steps"
    result = run_cli(*SMOKE, "--loop", loop, "--max-steps", "20", "--eval-strategy", "steps", "--eval-steps", "5",
                     "--save-strategy", "no", "--output-dir", out)
    assert result.exit_code == 0, result.output
    assert [r["step"] for r in evaluations(read_jsonl(out / "log_history.jsonl"))] == [0, 5, 10, 15, 20]
    assert not list(out.glob("checkpoint-*")) and (out / "model.safetensors").is_file()  # the final model, still
    assert run_cli("predict", "ner", out, "EU rejects German call").exit_code == 0

    out = tmp_path / "epochs"
    result = run_cli(*SMOKE, "--loop", loop, "--epochs", "2", "--eval-strategy", "no", "--save-strategy", "steps",
                     "--save-steps", "4", "--save-total-limit", "5", "--output-dir", out)
    assert result.exit_code == 0, result.output
    # steps 4, 8 and the last one (10); no forced epoch-end checkpoint at 5
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-10", "checkpoint-4", "checkpoint-8"]
    history = read_jsonl(out / "log_history.jsonl")
    assert [r["step"] for r in evaluations(history)] == [0, 10]  # before training, and the final one: none while
    assert read_json(out / "run.json")["evaluations"] == 0


@pytest.mark.e2e
@pytest.mark.parametrize("loop", LOOPS)
def test_load_best_model_at_end_keeps_the_best_evaluation(tmp_path, loop):
    """Rank by the highest eval_loss (so the best is an early evaluation, not the last): the output model is
    that checkpoint's, and its figures are those of that evaluation."""
    out = tmp_path / "best"
    result = run_cli(*SMOKE, "--loop", loop, "--max-steps", "15", "--eval-strategy", "steps", "--eval-steps", "5",
                     "--save-strategy", "steps", "--save-steps", "5", "--save-total-limit", "1",
                     "--load-best-model-at-end", "--metric-for-best-model", "loss", "--greater-is-better",
                     "--output-dir", out)
    assert result.exit_code == 0, result.output
    during = [r for r in evaluations(read_jsonl(out / "log_history.jsonl")) if r["step"] > 0][:3]
    best = max(during, key=lambda r: r["eval_loss"])
    assert best["step"] != 15
    info = read_json(out / "run.json")
    assert info["best_model"] == {"metric": "eval_loss", "value": best["eval_loss"], "step": best["step"],
                                  "kept_as_output": True}
    assert read_json(out / "metrics.json")["eval_loss"] == pytest.approx(best["eval_loss"], rel=1e-6)
    # the best checkpoint survived --save-total-limit 1, next to the newest one
    assert {f"checkpoint-{best['step']}", "checkpoint-15"} == {p.name for p in out.glob("checkpoint-*")}
    again = run_cli("ner", "--model", out, "--dataset", "sample", "--eval-only", "--output-dir", tmp_path / "ev")
    assert again.exit_code == 0, again.output
    assert read_json(tmp_path / "ev" / "metrics.json")["eval_loss"] == pytest.approx(best["eval_loss"], rel=1e-5)


@pytest.mark.e2e
@pytest.mark.parametrize("loop", LOOPS)
def test_early_stopping_stops(tmp_path, loop):
    out = tmp_path / "early"
    # eval_loss falls as it trains; ranked "greater is better" it never improves after the first evaluation
    result = run_cli(*SMOKE, "--loop", loop, "--max-steps", "30", "--eval-strategy", "steps", "--eval-steps", "3",
                     "--greater-is-better", "--early-stopping-patience", "2", "--output-dir", out)
    assert result.exit_code == 0, result.output
    history = read_jsonl(out / "log_history.jsonl")
    assert [r["step"] for r in evaluations(history)] == [0, 3, 6, 9]  # the one before training does not count
    info = read_json(out / "run.json")
    assert info["early_stopping"] == {"patience": 2, "stopped": True, "stopped_at_step": 9, "steps_trained": 9}


@pytest.mark.e2e
@pytest.mark.parametrize("loop", LOOPS)
def test_tensorboard_event_file_holds_the_loss(tmp_path, loop):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb"
    result = run_cli(*SMOKE, "--loop", loop, "--max-steps", "4", "--logging-steps", "2", "--report-to",
                     "tensorboard", "--output-dir", out)
    assert result.exit_code == 0, result.output
    (events,) = (out / "tensorboard").rglob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events.parent))
    accumulator.Reload()
    scalars = accumulator.Tags()["scalars"]
    assert "train/loss" in scalars and "eval/loss" in scalars
    assert [e.step for e in accumulator.Scalars("train/loss")] == [2, 4]


def test_tensorboard_missing_names_the_extra(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    result = run_cli(*SMOKE, "--max-steps", "1", "--report-to", "tensorboard", "--output-dir", tmp_path / "x")
    assert result.exit_code == 2 and "pip install 'nlpcli[tensorboard]'" in result.output


def test_trainer_arg_sets_the_field_and_unknown_keys_are_refused(tmp_path, monkeypatch):
    """A TrainingArguments field reaches the Trainer; one nlpcli has an option for is refused naming it."""
    from types import SimpleNamespace

    from nlpcli.config import config_yaml
    from nlpcli.runner import trainer

    reached = stop_before_the_loop(monkeypatch)  # the settings are final before any data is read
    out = tmp_path / "pass"
    result = run_cli(*SMOKE, "--max-steps", "2", "--trainer-arg", "adam_beta2=0.95", "--output-dir", out)
    assert result.exit_code == 0, result.output
    cfg = reached[0]["cfg"]
    # the TrainingArguments the Trainer loop trains by (and saves as training_args.bin), from the run's settings
    args = trainer.training_arguments(SimpleNamespace(cfg=cfg, output_dir=out, mixed_precision="no"))
    assert args.adam_beta2 == 0.95
    assert "adam_beta2: 0.95" in config_yaml(cfg, "ner")  # as nlpcli_config.yaml saves it

    unknown = run_cli(*SMOKE, "--max-steps", "2", "--trainer-arg", "adam_beta=0.9", "--output-dir", tmp_path / "u")
    assert unknown.exit_code == 2 and "not a TrainingArguments field" in unknown.output
    assert "adam_beta1" in unknown.output and "adam_beta2" in unknown.output
    accelerate = run_cli(*SMOKE, "--loop", "accelerate", "--max-steps", "2", "--trainer-arg", "adam_beta2=0.9",
                         "--output-dir", tmp_path / "a")
    assert accelerate.exit_code == 2 and "accelerate loop cannot honour" in accelerate.output
    option = run_cli(*SMOKE, "--max-steps", "2", "--trainer-arg", "learning_rate=1e-3", "--output-dir", tmp_path / "t")
    assert option.exit_code == 2 and "use --learning-rate" in option.output and not (tmp_path / "t").exists()
    managed = run_cli(*SMOKE, "--max-steps", "2", "--trainer-arg", "disable_tqdm=false", "--output-dir", tmp_path / "m")
    assert managed.exit_code == 2 and "nlpcli sets this itself" in managed.output


def test_trainer_args_from_yaml_merge_with_the_command_line(tmp_path):
    from nlpcli.config_layers import resolve_config
    from nlpcli.tasks import get_task

    config = tmp_path / "c.yaml"
    config.write_text("trainer_args:\n  adam_beta2: 0.98\n  dataloader_num_workers: 0\n")
    cfg = resolve_config(get_task("ner").config_class, "ner", config, {"trainer_args": ["adam_epsilon=1e-6"]})
    assert cfg.trainer_args == {"adam_beta2": 0.98, "dataloader_num_workers": 0, "adam_epsilon": "1e-6"}


def test_both_loops_build_the_trainers_optimizer(tmp_path):
    """--optim picks the optimizer for both loops (the Accelerate loop asks transformers, as the Trainer does):
    fused AdamW by default, with nlpcli's weight-decay groups."""
    import torch
    from transformers import BertConfig, BertForTokenClassification

    from nlpcli.config_layers import resolve_config
    from nlpcli.runner import settings
    from nlpcli.tasks import get_task

    model = BertForTokenClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                  num_attention_heads=2, intermediate_size=32))
    cls = get_task("ner").config_class
    default = settings.optimizer(settings.training_arguments(resolve_config(cls, "ner", None, {"weight_decay": 0.01}),
                                                             str(tmp_path), "no"), model)
    assert isinstance(default, torch.optim.AdamW) and default.defaults["fused"] is True
    assert [g["weight_decay"] for g in default.param_groups] == [0.01, 0.0]
    adafactor = settings.optimizer(
        settings.training_arguments(resolve_config(cls, "ner", None, {"optim": "adafactor"}), str(tmp_path), "no"),
        model)
    assert type(adafactor).__name__ == "Adafactor"
    refused = run_cli(*SMOKE, "--max-steps", "1", "--optim", "adamw_fused", "--output-dir", tmp_path / "o")
    assert refused.exit_code == 2 and "adamw_torch_fused" in refused.output


def test_length_grouped_batches_are_shorter_and_fixed_per_epoch():
    import datasets

    from nlpcli.runner.sampling import length_grouped_sampler

    lengths = [(i * 37) % 97 + 3 for i in range(400)]
    features = datasets.Dataset.from_dict({"input_ids": [[1] * n for n in lengths]})
    sampler = length_grouped_sampler(features, batch_size=8, seed=1)

    def padded_width(order: list[int]) -> float:
        batches = [order[i:i + 8] for i in range(0, len(order), 8)]
        return sum(max(lengths[j] for j in b) * len(b) for b in batches) / sum(lengths)

    sampler.set_epoch(0)
    first = list(sampler)
    assert sorted(first) == list(range(400)) and first == list(sampler)  # same epoch, same order
    sampler.set_epoch(1)
    assert list(sampler) != first
    assert padded_width(first) < 1.1 < padded_width(list(range(400)))  # grouped: hardly any padding


@pytest.mark.e2e
@pytest.mark.parametrize("loop", LOOPS)
def test_group_by_length_and_gradient_checkpointing_train(tmp_path, loop):
    plain = tmp_path / "plain"
    assert run_cli(*SMOKE, "--loop", loop, "--max-steps", "5", "--output-dir", plain).exit_code == 0
    checkpointed = tmp_path / "checkpointed"
    result = run_cli(*SMOKE, "--loop", loop, "--max-steps", "5", "--gradient-checkpointing", "--output-dir",
                     checkpointed)
    assert result.exit_code == 0, result.output
    assert read_json(checkpointed / "run.json")["gradient_checkpointing"] is True
    assert read_json(plain / "run.json")["gradient_checkpointing"] is False
    # recomputing activations changes memory, not the numbers
    assert read_json(checkpointed / "metrics.json") == pytest.approx(read_json(plain / "metrics.json"), rel=1e-5)
    grouped = tmp_path / "grouped"
    result = run_cli(*SMOKE, "--loop", loop, "--max-steps", "5", "--group-by-length", "--output-dir", grouped)
    assert result.exit_code == 0, result.output
    assert read_json(grouped / "metrics.json") != read_json(plain / "metrics.json")  # other batches


def test_strategy_options_are_checked_before_running(tmp_path):
    cases = [
        (["--load-best-model-at-end", "--eval-strategy", "no"], "drop --eval-strategy no"),
        (["--load-best-model-at-end", "--eval-steps", "5"], "--save-strategy must be the --eval-strategy (steps)"),
        (["--load-best-model-at-end", "--eval-steps", "4", "--save-steps", "6"], "must be a multiple of --eval-steps"),
        (["--early-stopping-patience", "2", "--eval-strategy", "no"], "counts evaluations"),
        (["--eval-strategy", "sometimes"], "must be one of epoch, steps, no"),
    ]
    for extra, message in cases:
        result = run_cli(*SMOKE, "--max-steps", "2", *extra, "--output-dir", tmp_path / "x")
        assert result.exit_code == 2 and message in result.output, (extra, result.output)
    streamed = run_cli("clm", "--model", "tiny", "--dataset", "sample", "--streaming", "--max-steps", "2",
                       "--group-by-length", "--output-dir", tmp_path / "s")
    assert streamed.exit_code == 2 and "--group-by-length sorts a whole training set" in streamed.output


def test_torch_compile_reaches_both_loops(tmp_path):
    from nlpcli.config_layers import resolve_config
    from nlpcli.runner import settings
    from nlpcli.tasks import get_task

    cfg = resolve_config(get_task("ner").config_class, "ner", None, {"torch_compile": True, "loop": "accelerate"})
    assert settings.training_arguments(cfg, str(tmp_path), "no").torch_compile is True  # the Trainer compiles
    assert settings.accelerator_options(cfg)["dynamo_backend"] == "inductor"  # and so does the Accelerate loop
    assert settings.accelerator_options(resolve_config(type(cfg), "ner"))["dynamo_backend"] is None


@pytest.mark.e2e
@pytest.mark.parametrize("loop", LOOPS)
def test_the_run_record_carries_over_a_resume(tmp_path, loop):
    """Evaluations, checkpoints, the best model and train_loss continue from the checkpoint's record."""
    out = tmp_path / "run"
    steps = ["--eval-steps", "3", "--save-steps", "3", "--save-total-limit", "10", "--load-best-model-at-end"]
    first = run_cli(*SMOKE, "--loop", loop, "--max-steps", "6", *steps, "--output-dir", out)
    assert first.exit_code == 0, first.output
    again = run_cli(*SMOKE, "--loop", loop, "--max-steps", "12", *steps, "--resume", "--output-dir", out)
    assert again.exit_code == 0, again.output
    info = read_json(out / "run.json")
    assert info["evaluations"] == 4 and info["checkpoints_written"] == 4  # steps 3, 6 (first run), 9, 12
    during = [r for r in evaluations(read_jsonl(out / "log_history.jsonl")) if r["step"] > 0]
    assert [r["step"] for r in during] == [3, 6, 9, 12]
    assert info["best_model"]["value"] == min(r["eval_loss"] for r in during)


def test_an_unknown_metric_for_best_model_names_the_known_ones():
    """The refusal comes at the first evaluation (only then are the task's metric names known): checked here on
    the figures ner's evaluation reports, without training up to it."""
    from nlpcli.config_layers import resolve_config
    from nlpcli.errors import UserError
    from nlpcli.runner.evaluation import prefixed
    from nlpcli.runner.record import RunRecord
    from nlpcli.tasks.ner import NerConfig, score_rows

    cfg = resolve_config(NerConfig, "ner", None, {
        "max_steps": 4, "eval_steps": 2, "save_steps": 2, "load_best_model_at_end": True,
        "metric_for_best_model": "bleu"})
    rows = [{"reference": ["B-PER", "I-PER", "O"], "prediction": ["B-PER", "O", "O"]}]
    metrics = {"eval_loss": 1.5, **prefixed(score_rows(rows)), "eval_runtime": 0.1, "epoch": 0.8}
    with pytest.raises(UserError) as refused:
        RunRecord().observe(cfg, 2, metrics)
    assert "--metric-for-best-model bleu" in refused.value.message
    assert "eval_overall_f1" in refused.value.message


@pytest.mark.e2e
@pytest.mark.parametrize("loop", LOOPS)
def test_the_checkpoint_of_an_epochs_last_step_follows_the_epochs_evaluation(tmp_path, loop):
    """As the Trainer orders them, so does the Accelerate loop: the epoch's evaluation, then the step checkpoint of
    its last step, whose record counts it (a run killed in between evaluates that epoch again once resumed, so its
    history ends as an uninterrupted run's)."""
    out = tmp_path / "run"
    result = run_cli(*SMOKE, "--loop", loop, "--epochs", "1", "--save-steps", "5", "--output-dir", out)
    assert result.exit_code == 0, result.output
    assert [r["step"] for r in evaluations(read_jsonl(out / "log_history.jsonl"))] == [0, 5]  # 0: before training
    record = read_json(out / "checkpoint-5" / "nlpcli_record.json")
    assert (record["evaluations"], record["best_step"]) == (1, 5)
