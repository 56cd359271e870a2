"""runner.progress without a training run: the plain lines printed off a terminal (with an ETA from a fake
clock), the headline metrics and evaluation labels, and silence on processes other than the main one."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from nlpcli.runner import progress
from nlpcli.runner.progress import TrainingProgress, evaluation_label, format_metrics, training_line

RECORD = {"step": 20, "epoch": 1.3333, "loss": 2.34567, "learning_rate": 1.2e-5, "grad_norm": 0.91234,
          "samples_per_second": 45.06}


def test_a_training_line_holds_every_field():
    assert training_line(RECORD, 250, 83.4) == ("step 20/250 epoch 1.33 loss 2.3457 lr 1.2e-05 grad_norm 0.9123 "
                                                "samples/s 45.1 eta 0:01:23")
    bare = {**RECORD, "grad_norm": None, "samples_per_second": None}
    assert training_line(bare, 250, None) == "step 20/250 epoch 1.33 loss 2.3457 lr 1.2e-05"
    assert training_line(RECORD, 250, 3725.6).endswith("eta 1:02:06")


def test_format_metrics_shows_headline_figures_only():
    metrics = {"eval_loss": 0.123456, "epoch": 2.0, "eval_runtime": 1.0, "eval_PER_f1": 0.5,
               "eval_overall_f1": 0.75, "eval_total": 6, "eval_per_group": {"f1": 1.0}, "eval_note": "text"}
    assert format_metrics(metrics) == "eval_loss=0.1235  eval_overall_f1=0.75  eval_total=6"
    many = {f"m{i}": float(i) for i in range(10)}
    assert format_metrics(many, limit=3) == "m0=0  m1=1  m2=2"


@pytest.mark.parametrize(
    ("step", "epoch", "training", "label"),
    [(0, None, False, "eval before training"), (12, 2.0, False, "final evaluation"),
     (5, 0.5, True, "eval step 5 (epoch 0.50)"), (5, None, True, "eval step 5 (epoch 0.00)")],
)
def test_evaluation_labels(step, epoch, training, label):
    assert evaluation_label(step, epoch, training) == label


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def perf_counter(self) -> float:
        return self.now


@pytest.fixture
def plain(monkeypatch):
    """A console that is not a terminal, writing into a buffer; a clock the test moves."""
    out = Console(file=io.StringIO(), force_terminal=False, width=40, highlight=False)
    clock = FakeClock(100.0)
    monkeypatch.setattr(progress, "console", out)
    monkeypatch.setattr(progress, "time", clock)
    return out, clock


def lines(out: Console) -> list[str]:
    return out.file.getvalue().splitlines()


def test_off_a_terminal_one_whole_line_per_interval_with_an_eta(plain):
    out, clock = plain
    shown = TrainingProgress()
    assert shown.plain
    shown.start(total_steps=10)
    clock.now = 104.0  # 2 steps in 4 s: 2 s a step, 8 steps to go
    shown.log_training({**RECORD, "step": 2, "epoch": 0.2})
    clock.now = 112.0  # 6 steps in 12 s: the same rate over the whole session
    shown.log_training({**RECORD, "step": 6, "epoch": 0.6})
    shown.log_evaluation("eval step 6 (epoch 0.60)", {"eval_loss": 1.5, "eval_runtime": 2.0})
    clock.now = 130.4
    shown.update(10)
    shown.stop()
    assert lines(out) == [
        "step 2/10 epoch 0.20 loss 2.3457 lr 1.2e-05 grad_norm 0.9123 samples/s 45.1 eta 0:00:16",
        "step 6/10 epoch 0.60 loss 2.3457 lr 1.2e-05 grad_norm 0.9123 samples/s 45.1 eta 0:00:08",
        "eval step 6 (epoch 0.60): eval_loss=1.5",
        "training ended at step 10/10 after 0:00:30",
    ]  # wider than the 40-column console, never wrapped
    assert "\x1b" not in out.file.getvalue()


def test_a_resumed_session_counts_its_eta_from_the_step_it_started_at(plain):
    out, clock = plain
    shown = TrainingProgress()
    shown.start(total_steps=20, done=10)
    clock.now = 105.0  # 5 steps in 5 s since step 10, 5 to go
    shown.log_training({**RECORD, "step": 15})
    assert lines(out) == ["step 15/20 epoch 1.33 loss 2.3457 lr 1.2e-05 grad_norm 0.9123 samples/s 45.1 eta 0:00:05"]
    shown.stop()
    assert lines(out)[-1] == "training ended at step 10/20 after 0:00:05"  # update() was not called: step 10


def test_no_eta_at_the_step_the_session_started_at(plain):
    out, _ = plain
    shown = TrainingProgress()
    shown.start(total_steps=20, done=10)
    shown.log_training({**RECORD, "step": 10, "grad_norm": None, "samples_per_second": None})
    assert lines(out) == ["step 10/20 epoch 1.33 loss 2.3457 lr 1.2e-05"]


def test_other_processes_print_nothing(plain, monkeypatch):
    monkeypatch.setenv("RANK", "2")
    out, _ = plain
    shown = TrainingProgress()
    shown.start(total_steps=4)
    shown.log_training({**RECORD, "step": 2})
    shown.log_evaluation("evaluation", {"eval_loss": 1.0})
    shown.stop()
    assert out.file.getvalue() == ""


def test_stop_without_start_prints_nothing(plain):
    out, _ = plain
    TrainingProgress().stop()
    assert out.file.getvalue() == ""


def test_the_constant_lead3_figures_are_shown_once(plain):
    out, _ = plain
    shown = TrainingProgress()
    rouge = {"eval_loss": 7.8, "eval_rouge1": 0.5}
    lead3 = {"eval_lead3_rouge1": 15.39, "eval_lead3_rouge2": 1.115}
    shown.log_evaluation(evaluation_label(0, None, False), {**rouge, **lead3})
    shown.log_evaluation(evaluation_label(4, 1.0, True), {**rouge, "eval_rouge1": 14.8, **lead3})
    shown.log_evaluation(evaluation_label(8, 2.0, False), {**rouge, **lead3})
    assert lines(out) == [
        "eval before training: eval_loss=7.8  eval_rouge1=0.5  (baseline, the same at every evaluation: "
        "eval_lead3_rouge1=15.39  eval_lead3_rouge2=1.115)",
        "eval step 4 (epoch 1.00): eval_loss=7.8  eval_rouge1=14.8",
        "final evaluation: eval_loss=7.8  eval_rouge1=0.5",  # not "eval evaluation:"
    ]
