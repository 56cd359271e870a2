"""The one rule for metric keys (nlpcli/metrics/kinds.py)."""

from __future__ import annotations

from nlpcli.metrics.kinds import metric_kind


def test_per_group_keys_and_their_group():
    assert (metric_kind("eval_WORK_OF_ART_f1").group, metric_kind("eval_WORK_OF_ART_f1").measure) == (
        "WORK_OF_ART", "f1")
    assert metric_kind("eval_HasAns_exact_match").group == "HasAns"
    assert metric_kind("eval_PER_number").per_group and metric_kind("eval_PER_number").count
    for overall in ("eval_overall_f1", "eval_exact_match", "eval_f1", "eval_loss", "eval_rougeL", "eval_accuracy"):
        assert not metric_kind(overall).per_group, overall


def test_split_before_timing_and_direction():
    kind = metric_kind("test_PER_f1_before")
    assert (kind.split, kind.name, kind.before, kind.group) == ("test", "PER_f1", True, "PER")
    assert metric_kind("train_loss").split is None and metric_kind("epoch").split is None
    assert metric_kind("eval_runtime").timing and metric_kind("eval_samples_per_second_before").timing
    assert not metric_kind("eval_samples_per_second").per_group and metric_kind("eval_samples").count
    assert not metric_kind("eval_loss").higher_is_better and not metric_kind("eval_perplexity").higher_is_better
    assert metric_kind("eval_overall_f1").higher_is_better
