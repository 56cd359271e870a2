"""runner.evaluation without an evaluation loop: per-sample loss against a hand-written cross-entropy, padding
of gathered outputs, metric naming, metrics.json's keys, and the evaluation before training on resume."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nlpcli.layout import METRICS_BEFORE as BEFORE_FILE
from nlpcli.runner import evaluation


def cross_entropy_by_hand(logits: torch.Tensor, label: int) -> float:
    """-log softmax(logits)[label], from the definition."""
    values = [float(v) for v in logits]
    return math.log(sum(math.exp(v) for v in values)) - values[label]


def test_per_sample_loss_sums_labelled_tokens_and_counts_them():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5)
    labels = torch.tensor([[1, -100, 3, 0], [-100, -100, 4, -100]])
    losses, counts = evaluation.per_sample_loss(logits, labels, shift=False)
    expected = [sum(cross_entropy_by_hand(logits[b, t], int(labels[b, t])) for t in range(4) if labels[b, t] != -100)
                for b in range(2)]
    assert losses.tolist() == pytest.approx(expected, rel=1e-5)
    assert counts.tolist() == [3, 1]


def test_per_sample_loss_shifted_scores_each_token_against_the_next_label():
    torch.manual_seed(1)
    logits = torch.randn(1, 4, 6)
    labels = torch.tensor([[2, 5, -100, 1]])
    losses, counts = evaluation.per_sample_loss(logits, labels, shift=True)
    # position 0 predicts label 5, position 1 predicts -100 (ignored), position 2 predicts 1; the last is unused
    expected = cross_entropy_by_hand(logits[0, 0], 5) + cross_entropy_by_hand(logits[0, 2], 1)
    assert losses.tolist() == pytest.approx([expected], rel=1e-5) and counts.tolist() == [2]


def test_per_sample_loss_of_one_label_per_sample():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    labels = torch.tensor([0, 2, -100])
    losses, counts = evaluation.per_sample_loss(logits, labels, shift=False)
    assert losses[:2].tolist() == pytest.approx([cross_entropy_by_hand(logits[0], 0), math.log(3)], rel=1e-6)
    assert losses[2] == 0 and counts.tolist() == [1, 1, 0]


def test_per_sample_correct_counts_arg_max_hits_on_labelled_tokens():
    logits = torch.zeros(2, 3, 4)
    logits[0, 0, 1] = logits[0, 1, 2] = logits[0, 2, 3] = 1.0  # predicts 1, 2, 3
    logits[1, :, 0] = 1.0  # predicts 0, 0, 0
    labels = torch.tensor([[1, 0, 3], [0, -100, 0]])
    assert evaluation.per_sample_correct(logits, labels, shift=False).tolist() == [2, 2]
    # shifted: predictions at 0, 1 against labels at 1, 2 -> (1 vs 0, 2 vs 3) and (0 vs -100, 0 vs 0)
    assert evaluation.per_sample_correct(logits, labels, shift=True).tolist() == [0, 1]


def test_loss_rows_one_per_example():
    rows = evaluation.loss_rows([[2.5, 3.0, 2.0], [0.5, 1.0, 0.0]], with_correct=True)
    assert rows == [{"index": 0, "loss_sum": 2.5, "tokens": 3, "correct": 2},
                    {"index": 1, "loss_sum": 0.5, "tokens": 1, "correct": 0}]
    assert evaluation.loss_rows([[1.0, 2.0]], with_correct=False) == [{"index": 0, "loss_sum": 1.0, "tokens": 2}]


def test_concat_padded():
    flat = evaluation.concat_padded([np.array([1, 2]), np.array([3])])
    assert flat.tolist() == [1, 2, 3]
    two = evaluation.concat_padded([np.array([[1, 2, 3]]), np.array([[4], [5]])])
    assert two.tolist() == [[1, 2, 3], [4, -100, -100], [5, -100, -100]]
    three = evaluation.concat_padded([np.ones((1, 1, 2)), np.zeros((1, 2, 2))], pad_value=7)
    assert three.shape == (2, 2, 2)
    assert three[0].tolist() == [[1, 1], [7, 7]] and three[1].tolist() == [[0, 0], [0, 0]]


def test_prefixed_adds_the_prefix_once():
    assert evaluation.prefixed({"f1": 1.0, "eval_loss": 2.0}) == {"eval_f1": 1.0, "eval_loss": 2.0}
    assert evaluation.prefixed({"loss": 1.0, "test_f1": 0.5}, "test_") == {"test_loss": 1.0, "test_f1": 0.5}


def test_derived_metrics_perplexity_for_loss_tasks_only():
    loss_task, logits_task = SimpleNamespace(evaluation="loss"), SimpleNamespace(evaluation="logits")
    assert evaluation.derived_metrics(loss_task, {"eval_loss": 2.0}) == {"eval_perplexity": pytest.approx(7.389056)}
    assert evaluation.derived_metrics(loss_task, {"eval_loss": 0}) == {"eval_perplexity": 1.0}
    assert evaluation.derived_metrics(loss_task, {"eval_loss": 800.0}) == {"eval_perplexity": math.inf}  # no overflow
    assert evaluation.derived_metrics(loss_task, {"eval_accuracy": 0.5}) == {}
    assert evaluation.derived_metrics(logits_task, {"eval_loss": 2.0}) == {}


def test_final_metrics_keeps_evaluation_and_train_loss_and_nulls_non_finite_values():
    metrics = {
        "eval_loss": 1.5, "eval_f1": math.nan, "eval_perplexity": math.inf, "eval_total": 6,
        "eval_PER": {"f1": 0.5}, "test_loss": 2.0, "train_loss": 3.0, "eval_loss_before": -math.inf,
        "eval_runtime": 0.1, "eval_samples_per_second": 9.0, "eval_steps_per_second": 1.0,
        "eval_preparation_time": 0.01, "eval_runtime_before": 0.2, "test_runtime": 0.3,
        "epoch": 2.0, "total_flos": 10.0, "train_runtime": 5.0,
    }
    assert evaluation.final_metrics(metrics) == {
        "eval_loss": 1.5, "eval_f1": None, "eval_perplexity": None, "eval_total": 6, "eval_PER": {"f1": 0.5},
        "test_loss": 2.0, "train_loss": 3.0, "eval_loss_before": None,
    }
    json.dumps(evaluation.final_metrics(metrics), allow_nan=False)  # valid JSON, as metrics.json must be


def test_before_training_evaluates_once_and_keeps_the_figures(tmp_path):
    calls = []

    def evaluate():
        calls.append(1)
        (tmp_path / "eval_predictions.jsonl").write_text('{"index": 0}\n')  # the rows this evaluation wrote
        return {"eval_loss": 2.0, "eval_perplexity": math.inf, "eval_runtime": 0.5}

    out = tmp_path
    metrics = evaluation.before_training(out, resumed=False, evaluate=evaluate)
    assert metrics == {"eval_loss_before": 2.0, "eval_perplexity_before": math.inf, "eval_runtime_before": 0.5}
    assert json.loads((out / BEFORE_FILE).read_text()) == {"eval_loss_before": 2.0, "eval_perplexity_before": None}
    assert not (out / "eval_predictions.jsonl").exists()
    assert (out / "eval_predictions_before.jsonl").read_text() == '{"index": 0}\n'

    def fails():
        raise AssertionError("a resumed run must not evaluate its checkpoint")

    resumed = evaluation.before_training(out, resumed=True, evaluate=fails)
    assert resumed == {"eval_loss_before": 2.0, "eval_perplexity_before": None} and calls == [1]
    fresh = evaluation.before_training(out, resumed=False, evaluate=evaluate)  # a new run measures again
    assert fresh["eval_loss_before"] == 2.0 and calls == [1, 1]


def test_before_training_on_resume_without_the_file_measures_nothing(tmp_path):
    """A run with --no-eval-before (or one made before ner and qa evaluated before training) keeps no figures: its
    resume does not measure the checkpoint it resumes from and call that 'before training'."""

    def fails():
        raise AssertionError("a resumed run must not evaluate its checkpoint")

    assert evaluation.before_training(tmp_path, resumed=True, evaluate=fails) == {}
    assert not (tmp_path / BEFORE_FILE).exists()


def test_before_training_writes_on_the_main_process_only(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    assert evaluation.before_training(tmp_path, False, lambda: {"eval_loss": 1.0}) == {"eval_loss_before": 1.0}
    assert not (tmp_path / BEFORE_FILE).exists()
