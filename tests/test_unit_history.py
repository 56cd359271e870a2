"""runner.history without a training run: log_history.jsonl lines, truncation to the checkpoint's step on
resume, what reaches the progress display and the tracker."""

from __future__ import annotations

import json
import math

from nlpcli.layout import HISTORY as HISTORY_FILE
from nlpcli.runner.history import RunLog, read_history


class FakeProgress:
    def __init__(self) -> None:
        self.training: list[dict] = []
        self.evaluations: list[tuple[str, dict]] = []

    def log_training(self, record):
        self.training.append(record)

    def log_evaluation(self, label, metrics):
        self.evaluations.append((label, metrics))


def write_history(folder, records) -> None:
    (folder / HISTORY_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))


OLD = [{"step": 0, "epoch": 0.0, "eval_loss": 3.0}, {"step": 2, "epoch": 0.4, "loss": 2.5},
       {"step": 4, "epoch": 0.8, "loss": 2.0}, {"step": 4, "epoch": 0.8, "eval_loss": 2.2},
       {"step": 6, "epoch": 1.2, "loss": 1.8}, {"step": 8, "epoch": 1.6, "eval_loss": 1.9}]


def test_a_resumed_run_keeps_the_lines_up_to_its_checkpoint(tmp_path):
    write_history(tmp_path, OLD)
    RunLog(tmp_path, FakeProgress()).start(resumed_step=4)
    assert read_history(tmp_path / HISTORY_FILE) == OLD[:4]  # step 4's training and evaluation lines stay


def test_a_new_run_starts_an_empty_history(tmp_path):
    write_history(tmp_path, OLD)
    RunLog(tmp_path, FakeProgress()).start(resumed_step=None)
    assert (tmp_path / HISTORY_FILE).read_text() == ""
    fresh = tmp_path / "new" / "run"
    RunLog(fresh, FakeProgress()).start(resumed_step=None)  # creates the folder
    assert (fresh / HISTORY_FILE).read_text() == ""


def test_read_history_skips_blank_lines_and_a_missing_file(tmp_path):
    (tmp_path / HISTORY_FILE).write_text('{"step": 1}\n\n  \n{"step": 2}\n')
    assert read_history(tmp_path / HISTORY_FILE) == [{"step": 1}, {"step": 2}]
    assert read_history(tmp_path / "missing.jsonl") == []


def test_training_lines_go_to_the_file_the_progress_and_the_tracker(tmp_path):
    progress, tracked = FakeProgress(), []
    log = RunLog(tmp_path, progress, tracker=lambda scalars, step: tracked.append((step, scalars)))
    log.start(None)
    log.training(3, 0.66666666, 2.5, 1e-3, None, 12.5)
    log.training(6, 1.2, 2.0, 5e-4, 0.9, None)
    expected = [{"step": 3, "epoch": 0.6667, "loss": 2.5, "learning_rate": 1e-3, "grad_norm": None,
                 "samples_per_second": 12.5},
                {"step": 6, "epoch": 1.2, "loss": 2.0, "learning_rate": 5e-4, "grad_norm": 0.9,
                 "samples_per_second": None}]
    assert read_history(tmp_path / HISTORY_FILE) == expected
    assert progress.training == expected
    # the step as the tracker's step, not among the scalars, and no value that was not measured
    assert tracked == [(3, {"epoch": 0.6667, "loss": 2.5, "learning_rate": 1e-3, "samples_per_second": 12.5}),
                       (6, {"epoch": 1.2, "loss": 2.0, "learning_rate": 5e-4, "grad_norm": 0.9})]


def test_evaluation_lines_keep_numeric_eval_figures_without_timings(tmp_path):
    progress, tracked = FakeProgress(), []
    log = RunLog(tmp_path, progress, tracker=lambda scalars, step: tracked.append((step, scalars)))
    log.start(None)
    metrics = {"eval_loss": 1.25, "eval_overall_f1": 0.5, "eval_PER": {"f1": 0.1}, "eval_runtime": 0.3,
               "eval_samples_per_second": 30.0, "eval_steps_per_second": 3.0, "epoch": 1.0, "train_loss": 2.0,
               "eval_total": 6}
    shown = {"eval_loss": 1.25, "eval_overall_f1": 0.5, "eval_total": 6}
    log.evaluation(4, 0.8, metrics, training=True)
    log.evaluation(0, None, metrics, training=False)
    log.evaluation(10, 2.0, metrics, training=False)
    assert read_history(tmp_path / HISTORY_FILE) == [{"step": 4, "epoch": 0.8, **shown},
                                                     {"step": 0, "epoch": 0.0, **shown},
                                                     {"step": 10, "epoch": 2.0, **shown}]
    assert progress.evaluations == [("eval step 4 (epoch 0.80)", shown), ("eval before training", shown),
                                    ("final evaluation", shown)]
    assert tracked == [(4, {"epoch": 0.8, **shown}), (0, {"epoch": 0.0, **shown}), (10, {"epoch": 2.0, **shown})]


def test_eval_only_labels_its_one_evaluation_as_an_evaluation(tmp_path):
    progress = FakeProgress()
    log = RunLog(tmp_path, progress, eval_only=True)
    log.start(None)
    log.evaluation(0, None, {"eval_loss": 1.0}, training=False)  # step 0, but not "before training"
    assert progress.evaluations == [("evaluation", {"eval_loss": 1.0})]


def test_a_non_finite_loss_is_still_one_line_each(tmp_path):
    log = RunLog(tmp_path, FakeProgress())
    log.start(None)
    log.training(1, 0.1, math.nan, 1e-3, math.inf, None)
    lines = (tmp_path / HISTORY_FILE).read_text().splitlines()
    assert len(lines) == 1 and '"loss": NaN' in lines[0] and '"grad_norm": Infinity' in lines[0]
    assert math.isnan(read_history(tmp_path / HISTORY_FILE)[0]["loss"])


def test_only_the_main_process_writes(tmp_path, monkeypatch):
    write_history(tmp_path, OLD)
    monkeypatch.setenv("RANK", "1")
    progress = FakeProgress()
    log = RunLog(tmp_path, progress)
    log.start(resumed_step=2)
    log.training(3, 0.6, 2.0, 1e-3, None, None)
    log.evaluation(3, 0.6, {"eval_loss": 1.0}, training=True)
    assert read_history(tmp_path / HISTORY_FILE) == OLD  # untouched
    assert len(progress.training) == 1  # the display decides itself (it is silent off the main process)
