"""runner.record without a training run: best-model and early-stopping decisions, the summed training loss,
the record a checkpoint carries, and what run.json reports."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from nlpcli.config import RunConfig
from nlpcli.errors import UserError
from nlpcli.layout import RECORD as RECORD_FILE
from nlpcli.runner.record import LossTotal, RunRecord, finish_training
from nlpcli.runner.report import RunReport


def observe_all(cfg: RunConfig, values: list[float], key: str = "eval_loss") -> RunRecord:
    record = RunRecord()
    for index, value in enumerate(values):
        record.observe(cfg, (index + 1) * 5, {key: value, "epoch": 1.0})
    return record


def test_the_lowest_loss_is_the_best_by_default():
    record = observe_all(RunConfig(), [3.0, 2.0, 2.5, 2.0])  # a tie is no improvement
    assert (record.best_metric, record.best_step) == (2.0, 10)
    assert record.evaluations == 4 and record.evaluations_without_improvement == 2
    assert not record.should_stop  # no --early-stopping-patience: never stops


def test_a_score_is_better_higher_and_greater_is_better_overrides():
    f1 = RunConfig(metric_for_best_model="overall_f1")  # the eval_ prefix is added
    record = observe_all(f1, [0.2, 0.6, 0.4], key="eval_overall_f1")
    assert (record.best_metric, record.best_step) == (0.6, 10)
    inverted = observe_all(RunConfig(greater_is_better=True), [3.0, 2.0, 4.0])
    assert (inverted.best_metric, inverted.best_step) == (4.0, 15)


def test_a_non_finite_value_never_becomes_the_best():
    record = observe_all(RunConfig(), [math.nan, 2.0, math.inf, -math.inf])
    assert (record.best_metric, record.best_step) == (2.0, 10)
    assert record.evaluations_without_improvement == 2


def test_early_stopping_after_patience_evaluations_without_improvement():
    cfg = RunConfig(early_stopping_patience=2)
    record = RunRecord()
    for step, value in ((3, 1.0), (6, 1.5), (9, 0.5), (12, 0.6)):  # improvement at 9 resets the count
        record.observe(cfg, step, {"eval_loss": value})
        assert not record.should_stop
    record.observe(cfg, 15, {"eval_loss": 0.7})
    assert record.should_stop and record.stopped_early_at == 15 and record.evaluations_without_improvement == 2


def test_an_unknown_metric_is_refused_only_when_something_needs_it():
    metrics = {"eval_loss": 0.5, "eval_overall_f1": 0.1, "eval_PER": {"f1": 0.2}, "eval_runtime": 1.2, "epoch": 1.0}
    record = RunRecord()
    record.observe(RunConfig(metric_for_best_model="bleu"), 2, metrics)  # nothing selects by it: just counted
    assert record.evaluations == 1 and record.best_step is None
    for cfg in (RunConfig(metric_for_best_model="bleu", load_best_model_at_end=True),
                RunConfig(metric_for_best_model="bleu", early_stopping_patience=1)):
        with pytest.raises(UserError) as raised:
            RunRecord().observe(cfg, 2, metrics)
        # the numeric eval_ keys are listed; per-group dicts and the epoch are not
        assert raised.value.message == ("--metric-for-best-model bleu: this task's evaluation reports eval_loss, "
                                        "eval_overall_f1, eval_runtime.")


def test_the_best_checkpoint_is_kept_only_with_load_best_model_at_end_and_when_it_exists(tmp_path):
    record = RunRecord(best_step=4, best_metric=0.1)
    keep = RunConfig(load_best_model_at_end=True)
    assert record.best_checkpoint(keep, tmp_path) is None  # rotated away or never written
    (tmp_path / "checkpoint-4").mkdir()
    assert record.best_checkpoint(keep, tmp_path) == tmp_path / "checkpoint-4"
    assert record.best_checkpoint(RunConfig(), tmp_path) is None
    assert RunRecord().best_checkpoint(keep, tmp_path) is None


def test_a_record_round_trips_through_its_checkpoint(tmp_path):
    record = RunRecord(loss_total=12.5, evaluations=3, checkpoints=2, best_metric=0.25, best_step=6,
                       evaluations_without_improvement=1, stopped_early_at=None)
    record.save(tmp_path)
    assert json.loads((tmp_path / RECORD_FILE).read_text())["loss_total"] == 12.5
    assert RunRecord.load(tmp_path) == record
    assert RunRecord.load(None) == RunRecord()  # a fresh run
    assert RunRecord.load(tmp_path / "older-checkpoint") == RunRecord()  # a checkpoint saved without one


def test_summary_for_run_json():
    cfg = RunConfig(load_best_model_at_end=True, early_stopping_patience=3)
    record = RunRecord(evaluations=4, checkpoints=2, best_metric=0.3, best_step=6, stopped_early_at=12)
    assert record.summary(cfg, 12, True) == {
        "evaluations": 4, "checkpoints_written": 2,
        "best_model": {"metric": "eval_loss", "value": 0.3, "step": 6, "kept_as_output": True},
        "early_stopping": {"patience": 3, "stopped": True, "stopped_at_step": 12, "steps_trained": 12},
    }
    assert RunRecord(evaluations=1).summary(RunConfig(), 5, False) == {"evaluations": 1, "checkpoints_written": 0}


class FakeAccelerator:
    """gather() of a tensor of shape (1,) from this and the `others` processes."""

    def __init__(self, *others: float) -> None:
        self.device = torch.device("cpu")
        self.others = others

    def gather(self, tensor):
        return torch.cat([tensor, torch.tensor(self.others, dtype=tensor.dtype)])


def test_loss_total_sums_steps_and_settles_the_process_mean_per_segment():
    record = RunRecord(loss_total=1.0)  # carried over from the checkpoint a run resumed from
    losses = LossTotal(record)
    for loss in (0.5, 0.25, 0.125):
        losses.add(torch.tensor(loss, dtype=torch.float32, requires_grad=True))  # detached, summed in float64
    assert losses.pending.dtype == torch.float64 and not losses.pending.requires_grad
    losses.settle(FakeAccelerator(1.875))  # this process summed 0.875, the other 1.875: mean 1.375
    assert record.loss_total == pytest.approx(1.0 + 1.375) and losses.pending is None
    losses.settle(FakeAccelerator(0.0))  # nothing added since: adds 0
    assert record.loss_total == pytest.approx(2.375)
    assert losses.mean(5) == pytest.approx(2.375 / 5)
    assert losses.mean(0) is None


def test_finish_training_reports_train_loss_record_and_gradient_checkpointing():
    cfg = RunConfig()
    losses = LossTotal(RunRecord(loss_total=6.0, evaluations=2, checkpoints=1))
    ctx = SimpleNamespace(cfg=cfg, report=RunReport(training={"tokens_per_second": 10.0}), train_loss=None,
                          model=SimpleNamespace(is_activation_checkpointing=True))
    finish_training(ctx, losses, 4, 4 / 3, best_loaded=False)
    assert ctx.train_loss == 1.5
    assert ctx.report.training == {"tokens_per_second": 10.0, "steps": 4, "epochs": 1.3333, "evaluations": 2,
                                   "checkpoints_written": 1, "gradient_checkpointing": True}
    plain = SimpleNamespace(cfg=cfg, report=RunReport(), train_loss=None, model=object())  # no such attribute
    finish_training(plain, LossTotal(RunRecord()), 0, None, best_loaded=False)  # None: a stream's epochs
    assert plain.report.training["gradient_checkpointing"] is False and plain.train_loss is None
    assert plain.report.training["epochs"] is None
