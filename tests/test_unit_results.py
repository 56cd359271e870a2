"""The example scripts' result files, from the final metrics and the run report (no run needed)."""

from __future__ import annotations

from nlpcli.runner.results import example_script_results


def test_an_evaluation_only_run_writes_eval_results_and_their_union():
    metrics = {"eval_loss": 0.5, "eval_bleu": 12.5, "eval_bleu_before": 1.0}
    files = example_script_results(metrics, {"eval_samples": 7}, None)
    assert files == {"eval_results.json": {"eval_loss": 0.5, "eval_bleu": 12.5, "eval_samples": 7},
                     "all_results.json": {"eval_loss": 0.5, "eval_bleu": 12.5, "eval_samples": 7}}


def test_a_test_set_is_named_predict_as_the_scripts_name_it():
    metrics = {"train_loss": 2.0, "eval_overall_f1": 0.5, "test_overall_f1": 0.25, "test_PER_number": 3}
    info = {"train_samples": 10, "train_runtime_s": 4.0, "train_samples_per_second": 5.0, "eval_samples": 2,
            "test_samples": 3}
    files = example_script_results(metrics, info, {"step": 8, "epoch": 2.0})
    assert files["train_results.json"] == {"train_loss": 2.0, "train_samples": 10, "train_runtime": 4.0,
                                           "train_samples_per_second": 5.0, "train_steps_per_second": 2.0,
                                           "epoch": 2.0}
    assert files["predict_results.json"] == {"predict_overall_f1": 0.25, "predict_PER_number": 3,
                                             "predict_samples": 3, "epoch": 2.0}
    assert files["all_results.json"]["eval_overall_f1"] == 0.5 and len(files) == 4


def test_nothing_evaluated_writes_nothing():
    assert example_script_results({}, {}, None) == {}
