"""`nlpcli tune`: the search space (default, --space files and their refusals), the runner's evaluation hook, the
pruning hook, and real studies on the tiny preset: a search that finds the better learning rate and prunes the bad
one, two worker processes on one journal with one of them killed and the study resumed, and a PostgreSQL storage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, read_json, run_cli
from nlpcli import layout
from nlpcli.config_layers import resolve_config
from nlpcli.runner.context import Stop
from nlpcli.runner.record import RunRecord
from nlpcli.tasks.ner import NerConfig
from nlpcli.tuning import study as studies
from nlpcli.tuning.trial import PruningHook

TINY_NER = ("--model", "tiny", "--dataset", "sample", "--max-train-samples", "8", "--max-eval-samples", "8")
LR_SPACE = "learning_rate: {type: categorical, choices: [1.0e-9, 1.0e-3]}\n"  # a bad and a good learning rate


def space_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_print_space_shows_the_default_space_around_the_resolved_config_and_reads_back(tmp_path):
    result = run_cli("tune", "ner", "--model", "tiny", "--print-space")
    assert result.exit_code == 0, result.output
    space = yaml.safe_load(result.output)
    # a decade either side of the tiny preset's 5e-3; the batch size never above the configured 8
    assert space["learning_rate"] == {"type": "float", "low": 0.0005, "high": 0.05, "log": True}
    assert space["batch_size"] == {"type": "categorical", "choices": [2, 4, 8]}
    assert space["label_all_tokens"] == {"type": "categorical", "choices": [True, False]}  # the task's knob
    assert set(space) == {"learning_rate", "warmup_ratio", "weight_decay", "batch_size", "label_all_tokens"}
    again = run_cli("tune", "ner", "--model", "tiny", "--space", space_file(tmp_path, result.output), "--print-space")
    assert again.exit_code == 0 and again.output == result.output
    fixed = run_cli("tune", "mlm", "--model", "tiny", "--learning-rate", "1e-3", "--set", "whole_word_masking=true",
                    "--print-space")
    assert fixed.exit_code == 0, fixed.output
    mlm = yaml.safe_load(fixed.output)  # what the command line sets stays fixed
    assert "learning_rate" not in mlm and "whole_word_masking" not in mlm and "mlm_probability" in mlm


@pytest.mark.parametrize(("text", "expected"), [
    ("learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3}\nlearnin_rate: {type: float, low: 0.1, high: 0.2}\n",
     "line 2: learnin_rate: unknown option"),
    ("learning_rate: {type: normal, low: 1.0e-5, high: 1.0e-3}\n", "unknown distribution type 'normal'"),
    ("batch_size: {type: float, low: 4, high: 8}\n", "use type int or categorical"),
    ("label_all_tokens: {type: int, low: 0, high: 1}\n", "use type categorical"),
    ("learning_rate: {type: float, low: 1.0e-3, high: 1.0e-5, log: true}\n", "empty range"),
    ("learning_rate: {type: float, low: 0.0, high: 1.0e-3, log: true}\n", "must be above 0"),
    ("warmup_ratio: {type: float, low: 0.0, high: 1.5}\n", "must be at least 0 and below 1"),
    ("batch_size: {type: categorical, choices: []}\n", "non-empty list of choices"),
    ("learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3, choices: [1]}\n", "not choices"),
    ("output_dir: {type: categorical, choices: [a, b]}\n", "cannot be searched"),
    ("{}\n", "no options to search"),
])
def test_bad_space_files_are_refused_naming_the_file_line_and_key(tmp_path, text, expected):
    path = space_file(tmp_path, text)
    result = run_cli("tune", "ner", *TINY_NER, "--space", path, "--trials", "2", "--output-dir", tmp_path / "study")
    assert result.exit_code == 2, result.output
    assert str(path) in result.output and expected in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "study").exists()  # refused before anything


def test_without_optuna_tune_exits_2_naming_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` now raises ImportError
    result = run_cli("tune", "ner", *TINY_NER, "--trials", "1", "--output-dir", tmp_path / "study")
    assert result.exit_code == 2 and "pip install 'nlpcli[tune]'" in result.output, result.output
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize(("args", "expected"), [
    (("--pruner", "asha"), "--pruner asha: expected one of none, median, hyperband"),
    (("--eval-only",), "--eval-only"),
    (("--storage", "redis://localhost"), "expected a database URL"),
    (("--resume", "--overwrite"), "give one"),
])
def test_contradictory_or_unknown_tune_options_are_refused(tmp_path, args, expected):
    result = run_cli("tune", "ner", *TINY_NER, "--output-dir", tmp_path / "study", *args)
    assert result.exit_code == 2 and expected in result.output, result.output


def test_every_tune_option_is_in_a_readme_table(monkeypatch):
    import re

    monkeypatch.setenv("COLUMNS", "200")
    page = run_cli("tune", "ner", "--help").output
    rows = [line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("| `")]
    documented = set(re.findall(r"--[a-z0-9][a-z0-9-]*", "\n".join(rows))) | {"--help", "--config", "--set"}
    flags = set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", page))
    assert {"--trials", "--space", "--pruner", "--storage"} <= flags
    assert flags <= documented, sorted(flags - documented)


class FakeTrial:
    """An Optuna trial as the pruning hook sees it: reports kept, prunes once told to."""

    def __init__(self, prune_at: int) -> None:
        self.reports: list[tuple[float, int]] = []
        self.prune_at = prune_at

    def report(self, value: float, step: int) -> None:
        self.reports.append((value, step))

    def should_prune(self) -> bool:
        return self.reports[-1][1] >= self.prune_at


def test_the_pruning_hook_reports_each_evaluation_and_stops_when_the_trial_should_prune():
    hook = PruningHook(FakeTrial(prune_at=4), "eval_loss", "median")
    assert hook(2, {"eval_loss": 1.5, "eval_overall_f1": 0.1}) is None
    assert hook(3, {"eval_loss": float("nan")}) is None  # not reported: Optuna compares finite values
    stop = hook(4, {"eval_loss": 1.25})
    assert isinstance(stop, Stop) and "median pruner: eval_loss 1.25 at step 4" in stop.reason
    assert hook.trial.reports == [(1.5, 2), (1.25, 4)] and hook.pruned_at == 4
    with pytest.raises(Exception, match="--metric eval_loss: the trial's evaluations report eval_overall_f1"):
        hook(5, {"eval_overall_f1": 0.2})


def test_a_stop_an_evaluation_hook_asks_for_is_recorded_and_carried_in_checkpoints(tmp_path):
    record = RunRecord()
    record.request_stop(4, "pruned")
    record.request_stop(6, "later")  # the first request counts
    assert record.should_stop and record.stopped_on_request_at == 4
    record.save(tmp_path)
    again = RunRecord.load(tmp_path)
    assert again.should_stop and again.stop_reason == "pruned"
    summary = again.summary(NerConfig(), 4, False)
    assert summary["stopped_on_request"] == {"at_step": 4, "reason": "pruned"}


def test_a_trial_of_a_process_that_is_gone_is_an_orphan():
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    me = studies.this_worker()
    assert not studies.is_gone(me)
    assert studies.is_gone({**me, "pid": ended.pid, "started": None})
    assert not studies.is_gone({**me, "host": me["host"] + "-elsewhere", "pid": ended.pid})  # another machine's
    if me["started"] is not None:  # the same pid, another process (a pid reused after a reboot)
        assert studies.is_gone({**me, "started": str(int(me["started"]) + 1)})


def tune_json(study: Path) -> dict:
    return read_json(study / layout.TUNE_RESULTS)


@pytest.mark.e2e
def test_a_search_finds_the_better_learning_rate_and_prunes_the_bad_one(tmp_path):
    study = tmp_path / "study"
    result = run_cli("tune", "ner", *TINY_NER, "--max-steps", "3", "--eval-strategy", "steps", "--eval-steps", "1",
                     "--space", space_file(tmp_path, LR_SPACE), "--trials", "3", "--startup-trials", "1",
                     "--seed", "44", "--storage", f"sqlite:///{tmp_path / 'study.db'}", "--output-dir", study)
    assert result.exit_code == 0, result.output
    found = tune_json(study)
    trials = found["trials"]
    assert [t["state"] for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED"], trials
    assert [t["params"]["learning_rate"] for t in trials] == [1e-3, 1e-3, 1e-9]
    best = found["best"]
    assert best["params"] == {"learning_rate": 1e-3} and found["trials_finished"] == 3
    for trial in trials[:2]:  # each objective is the trial's own metrics.json
        assert trial["value"] == read_json(study / f"trial-{trial['number']}" / "metrics.json")["eval_loss"]
    pruned = trials[2]
    folder = study / "trial-2"
    info = read_json(folder / "run.json")
    assert info["stopped_on_request"]["at_step"] == pruned["pruned_at_step"] < 3
    assert pruned["value"] > best["value"]
    assert (folder / "metrics.json").is_file() and (folder / "eval_predictions.jsonl").is_file()
    assert not list(folder.glob("checkpoint-*"))  # its checkpoints removed, its files kept
    assert read_json(folder / layout.TRIAL_STATE)["state"] == "PRUNED"
    # --keep best: only the best trial keeps its weights
    kept = [t["number"] for t in trials if (study / f"trial-{t['number']}" / "model.safetensors").is_file()]
    assert kept == [best["number"]]
    cfg = resolve_config(NerConfig, "ner", study / layout.BEST_CONFIG)  # ready for nlpcli ner --config
    assert (cfg.learning_rate, cfg.max_steps, cfg.seed, cfg.output_dir) == (1e-3, 3, 44, None)
    assert (study / layout.TUNE_CHART).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "PRUNED at step" in result.output and "best: trial" in result.output
    report = run_cli("report", *sorted(study.glob("trial-*")), "--json", "--output", tmp_path / "trials.png")
    compared = [r["metrics"]["eval_loss"] for r in json.loads(report.output)["runs"]]  # nlpcli report trial-*
    assert compared == [t["value"] for t in trials[:2]] + [read_json(folder / "metrics.json")["eval_loss"]]


@pytest.mark.e2e
def test_the_accelerate_loop_ends_training_where_an_evaluation_hook_says_stop(tmp_path):
    from nlpcli.commands.task import run

    seen: list[tuple[int, float]] = []

    def hook(step: int, metrics: dict) -> Stop | None:
        seen.append((step, metrics["eval_loss"]))
        return Stop("enough") if step == 2 else None

    cfg = resolve_config(NerConfig, "ner", None, {"model": "tiny", "dataset": "sample", "max_train_samples": 8,
                                                  "max_eval_samples": 8, "max_steps": 4, "eval_steps": 1,
                                                  "loop": "accelerate", "output_dir": str(tmp_path / "run")})
    result = run("ner", cfg, on_evaluation=hook)
    assert [step for step, _ in seen] == [1, 2]
    info = read_json(tmp_path / "run" / "run.json")
    assert info["stopped_on_request"] == {"at_step": 2, "reason": "enough"}
    assert result["metrics"]["eval_loss"] == seen[-1][1] == read_json(tmp_path / "run" / "metrics.json")["eval_loss"]


def load_study(study: Path):
    optuna = studies.load_optuna()
    storage, _ = studies.open_storage(optuna, None, study)
    return optuna.load_study(study_name=study.name, storage=storage)


def worker(study: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "nlpcli", "tune", "ner", *TINY_NER, "--max-steps", "2", "--trials", "3",
               "--pruner", "none", "--resume", "auto", "--output-dir", str(study)]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.e2e
def test_two_workers_share_a_journal_study_and_a_killed_workers_trial_is_retried(tmp_path):
    study = tmp_path / "study"
    first, second = worker(study), worker(study)
    killed, deadline = None, time.monotonic() + 240
    try:
        while killed is None and time.monotonic() < deadline and second.poll() is None:
            time.sleep(0.1)
            if not (study / layout.TUNE_JOURNAL).is_file():
                continue
            try:
                running = load_study(study).get_trials(deepcopy=False)
            except KeyError:  # the study is being created
                continue
            mine = [t for t in running if t.state.name == "RUNNING" and "config" in t.user_attrs  # its run started
                    and t.user_attrs.get("worker", {}).get("pid") == first.pid]
            if mine:
                os.kill(first.pid, signal.SIGKILL)
                killed = mine[0].number
        first.wait()
        output, _ = second.communicate(timeout=300)
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert killed is not None, "the first worker never ran a trial before the second finished the study"
    assert second.returncode == 0, output[-3000:]
    resumed = run_cli("tune", "ner", *TINY_NER, "--max-steps", "2", "--trials", "4", "--pruner", "none", "--resume",
                      "--output-dir", study)  # continues the study: one more trial (and the orphan, if still there)
    assert resumed.exit_code == 0, resumed.output
    trials = {t["number"]: t for t in tune_json(study)["trials"]}
    assert trials[killed]["state"] == "FAIL" and trials[killed]["worker"].endswith(f":{first.pid}")
    retries = [t for t in trials.values() if t.get("retry_of") == killed]
    assert len(retries) == 1 and retries[0]["state"] == "COMPLETE"
    assert retries[0]["params"] == trials[killed]["params"]  # the same trial again
    assert sum(t["state"] == "COMPLETE" for t in trials.values()) == 4 == tune_json(study)["trials_finished"]
    workers = {t["worker"].rsplit(":", 1)[1] for t in trials.values()}
    assert {str(first.pid), str(second.pid)} <= workers  # both processes took trials from the one study
    for trial in trials.values():
        if trial["state"] == "COMPLETE":
            assert trial["value"] == read_json(Path(trial["folder"]) / "metrics.json")["eval_loss"]


@pytest.mark.e2e
def test_a_study_on_a_real_postgresql_server(tmp_path):
    pgserver = pytest.importorskip("pgserver", reason="pgserver (a PostgreSQL server from PyPI) is not installed")
    pytest.importorskip("psycopg2", reason="psycopg2 (the PostgreSQL driver) is not installed")
    try:
        server = pgserver.get_server(str(tmp_path / "pg"), cleanup_mode="stop")
    except Exception as err:  # noqa: BLE001  (a machine where the bundled server cannot start)
        pytest.skip(f"PostgreSQL did not start here: {err}")
    try:
        url = server.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1)
        study = tmp_path / "study"
        result = run_cli("tune", "ner", *TINY_NER, "--max-steps", "1", "--trials", "1", "--pruner", "none",
                         "--storage", url, "--study-name", "pg-study", "--output-dir", study)
        assert result.exit_code == 0, result.output
        optuna = studies.load_optuna()
        trials = optuna.load_study(study_name="pg-study", storage=url).get_trials()
        assert [t.state.name for t in trials] == ["COMPLETE"]
        assert trials[0].value == read_json(study / "trial-0" / "metrics.json")["eval_loss"]
        assert tune_json(study)["storage"].startswith("postgresql+psycopg2://")
    finally:
        server.cleanup()


def test_a_running_trial_whose_worker_is_gone_is_failed_and_queued_again():
    optuna = studies.load_optuna()
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="s")
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    orphan, alive = study.ask(), study.ask()
    orphan.suggest_float("learning_rate", 1e-4, 1e-2)
    orphan.set_user_attr("worker", {**studies.this_worker(), "pid": ended.pid, "started": None})
    alive.set_user_attr("worker", studies.this_worker())
    failed = studies.fail_orphans(optuna, study, storage)
    assert [t.number for t in failed] == [orphan.number]
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {0: "FAIL", 1: "RUNNING", 2: "WAITING"}  # the live worker's trial is left alone
    queued = study.get_trials()[2]
    assert queued.system_attrs["failed_trial"] == 0 and queued.params == orphan.params


def test_a_trial_whose_loss_diverges_fails_and_counts_and_the_study_goes_on(tmp_path):
    from nlpcli.errors import TrainingDiverged
    from nlpcli.tasks import get_task
    from nlpcli.tuning.results import finished_count
    from nlpcli.tuning.space import parse_param
    from nlpcli.tuning.trial import Diverged, Objective

    def diverging(cfg, hook):
        assert cfg.learning_rate == 10.0 and cfg.output_dir == str(tmp_path / "trial-0")
        raise TrainingDiverged("The training loss is no longer finite (NaN or inf) at step 2")

    optuna = studies.load_optuna()
    study = optuna.create_study()
    space = {"learning_rate": parse_param(get_task("ner"), "learning_rate",
                                          {"type": "categorical", "choices": [10.0]}, "test")}
    resolve = lambda **values: resolve_config(NerConfig, "ner", None, {"model": "tiny", **values})  # noqa: E731
    study.optimize(Objective("ner", tmp_path, space, resolve, diverging, "eval_loss", "none"), n_trials=1,
                   catch=(Diverged,))
    trial = study.get_trials()[0]
    assert trial.state.name == "FAIL" and trial.user_attrs["diverged"] and finished_count([trial]) == 1


def test_a_new_study_refuses_an_existing_one_and_resume_refuses_none_leaving_the_folder_as_it_was(tmp_path):
    study = tmp_path / "study"
    missing = run_cli("tune", "ner", *TINY_NER, "--trials", "1", "--resume", "--output-dir", study)
    assert missing.exit_code == 2 and "no study 'study' to continue" in missing.output, missing.output
    assert not study.exists()
    optuna = studies.load_optuna()
    storage, _ = studies.open_storage(optuna, None, study)
    optuna.create_study(storage=storage, study_name="study")
    again = run_cli("tune", "ner", *TINY_NER, "--trials", "1", "--output-dir", study)
    assert again.exit_code == 2 and "already exists" in again.output and "--resume" in again.output, again.output
    assert sorted(p.name for p in study.iterdir()) == [layout.TUNE_JOURNAL]


def test_a_trial_stopped_by_a_signal_is_failed_and_queued_again_before_the_worker_exits(tmp_path):
    from nlpcli.errors import Interrupted
    from nlpcli.tuning.loop import TuneSettings, tune

    def stopped(cfg, hook):
        raise Interrupted("stopped by SIGTERM at step 3; checkpoint-3 is kept.", 143)

    resolve = lambda **values: resolve_config(  # noqa: E731
        NerConfig, "ner", None, {"model": "tiny", "output_dir": str(tmp_path / "study"), **values})
    with pytest.raises(Interrupted):
        tune("ner", resolve, set(), TuneSettings(trials=2, pruner="none"), stopped)
    study = load_study(tmp_path / "study")
    first, queued = study.get_trials()
    assert first.state.name == "FAIL" and queued.state.name == "WAITING"
    assert queued.params == first.params and queued.system_attrs["failed_trial"] == 0
    assert [t["state"] for t in tune_json(tmp_path / "study")["trials"]] == ["FAIL"]
