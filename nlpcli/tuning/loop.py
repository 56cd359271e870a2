"""`nlpcli tune`'s steps: check the options, make the search space, open the study, run trials until the study
has --trials finished ones (counting every worker's), and write what it found after each trial (tune.json,
best_config.yaml; tune.png and the table at the end). A worker killed mid-trial leaves a RUNNING trial that the
next worker to look (or `--resume`) marks failed and queues again; a worker stopped by SIGTERM/SIGINT does that
itself before it exits."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape

from nlpcli import layout
from nlpcli.config import RunConfig
from nlpcli.config_args import RESUME_CHOICES
from nlpcli.console import is_main_process, say, warn
from nlpcli.errors import Interrupted, UserError
from nlpcli.metrics.kinds import EVAL_PREFIX, higher_is_better
from nlpcli.tasks import get_task
from nlpcli.tuning import study as studies
from nlpcli.tuning.chart import write_chart
from nlpcli.tuning.results import best_trial, finished_count, show_table, write_results
from nlpcli.tuning.space import Space, default_space, read_space, space_yaml
from nlpcli.tuning.trial import DIVERGED, Diverged, Objective, RunTrial, keep_models, mark

STUDY_FILES = (layout.TUNE_JOURNAL, layout.TUNE_RESULTS, layout.TUNE_CHART, layout.BEST_CONFIG)


@dataclass(frozen=True)
class TuneSettings:
    """The options of `nlpcli tune` beyond the task's own."""

    trials: int
    space_file: Path | None = None
    print_space: bool = False
    metric: str | None = None
    direction: str | None = None
    pruner: str = "median"
    startup_trials: int = 5
    storage: str | None = None
    study_name: str | None = None
    keep: str = "best"


def check_options(base: RunConfig) -> None:
    if base.eval_only:
        raise UserError("--eval-only: nlpcli tune trains a model per trial; drop it.")
    if base.push_to_hub:
        raise UserError("--push-to-hub: nlpcli tune trains a model per trial and pushes none.",
                        hint="Push the best one: nlpcli TASK --config STUDY/best_config.yaml --push-to-hub.")
    if base.resume not in RESUME_CHOICES:
        raise UserError(f"--resume {base.resume}: nlpcli tune continues a study (--resume, or --resume auto), not a "
                        "checkpoint.")
    if base.overwrite and base.resume != "no":
        raise UserError("--overwrite deletes the study and --resume continues it: give one.")


def search_space(task_name: str, base: RunConfig, fixed: set[str], space_file: Path | None) -> Space:
    """The --space file's space, or the task's default one around `base`."""
    task = get_task(task_name)
    if space_file is None:
        return default_space(task, base, fixed)
    space = read_space(space_file, task)
    for name in sorted(set(space) & fixed):
        warn(f"{name} is set on the command line and searched by {space_file}: every trial takes the space's value.")
    return space


def objective_of(base: RunConfig, settings: TuneSettings) -> tuple[str, str]:
    """(metric key, direction): --metric, else the task's --metric-for-best-model; --direction, else the metric's
    own (lower for losses and perplexities, higher for the rest)."""
    if settings.metric is None:
        metric, higher = base.best_metric_key, base.higher_is_better
    else:
        metric = settings.metric if settings.metric.startswith(EVAL_PREFIX) else EVAL_PREFIX + settings.metric
        higher = higher_is_better(metric)
    return metric, settings.direction or ("maximize" if higher else "minimize")


def clear_study_dir(study_dir: Path) -> None:
    """--overwrite: the trial folders and study files of `study_dir` go (nothing else in it)."""
    for folder in study_dir.glob(f"{layout.TRIAL_PREFIX}*"):
        if folder.is_dir():
            shutil.rmtree(folder)
    for name in STUDY_FILES:
        (study_dir / name).unlink(missing_ok=True)


def tune(task_name: str, resolve: Callable[..., RunConfig], fixed: set[str], settings: TuneSettings,
         run: RunTrial) -> dict[str, Any]:
    """Run (or continue, or join) the study; returns what tune.json holds (empty for --print-space)."""
    base = resolve()
    check_options(base)
    space = search_space(task_name, base, fixed, settings.space_file)
    if settings.print_space:
        print(f"# nlpcli tune {task_name}: the search space (edit it and pass it back with --space FILE)")
        print(space_yaml(space), end="")
        return {}
    optuna = studies.load_optuna()
    if settings.pruner != "none" and base.evaluation_strategy == "no":
        warn(f"--pruner {settings.pruner} prunes at evaluations made while training, and --eval-strategy no makes "
             "none: no trial will be pruned.")
    study_dir = Path(base.output_dir) if base.output_dir else layout.default_study_dir(task_name)
    metric, direction = objective_of(base, settings)
    if base.overwrite and settings.storage is None:
        clear_study_dir(study_dir)
    new_dir, new_journal = not study_dir.exists(), not (study_dir / layout.TUNE_JOURNAL).exists()
    storage, where = studies.open_storage(optuna, settings.storage, study_dir)
    name = settings.study_name or study_dir.resolve().name
    if base.overwrite and settings.storage is not None:
        clear_study_dir(study_dir)
        if name in optuna.study.get_all_study_names(storage):
            optuna.delete_study(study_name=name, storage=storage)
    try:
        study = studies.open_study(
            optuna, storage, name, direction, base.resume, {"task": task_name, "metric": metric},
            sampler=studies.sampler(optuna, base.seed, settings.startup_trials),
            pruner=studies.pruner(optuna, settings.pruner, settings.startup_trials))
    except UserError:  # refused: leave the folder as it was found
        if new_dir:
            shutil.rmtree(study_dir, ignore_errors=True)
        elif new_journal and settings.storage is None:
            (study_dir / layout.TUNE_JOURNAL).unlink(missing_ok=True)
        raise
    facts = {"task": task_name, "metric": metric, "storage": where, "pruner": settings.pruner,
             "trials_requested": settings.trials, "space": {k: p.as_yaml() for k, p in space.items()}}
    objective = Objective(task_name, study_dir, space, resolve, run, metric, settings.pruner)
    say(f"[bold]tune {task_name}[/bold]: study {escape(name)} in {escape(where)}, {settings.trials} trials, "
        f"{metric} ({direction}), pruner {settings.pruner}, keep {settings.keep} -> {study_dir}")
    try:
        _run_trials(optuna, study, storage, objective, settings, facts, study_dir)
    except (Interrupted, KeyboardInterrupt):
        if objective.current is not None:  # the trial under way: failed, and queued again for a --resume
            failed = studies.fail_and_retry(optuna, study, storage, objective.current)
            mark(study_dir / layout.trial_name(failed.number), state=failed.state.name, reason="interrupted")
            warn(f"trial {failed.number} was interrupted: marked failed and queued again. Continue the study with "
                 f"the same command and --resume.")
        write_results(study, study_dir, facts)
        raise
    found = write_results(study, study_dir, facts)
    best = best_trial(study)
    keep_models(study.get_trials(deepcopy=False), best.number if best else None, settings.keep)
    chart = write_chart(study, study_dir, metric)
    if is_main_process():
        show_table(found)
        if best is None:
            say("no trial has completed yet: no best_config.yaml.")
        else:
            say(f"best: trial {best.number}, {metric} = {best.value:.6g} -> {study_dir / layout.BEST_CONFIG}")
        say(f"results: {study_dir / layout.TUNE_RESULTS}" + (f", chart: {chart}" if chart else ""))
    return found


def _run_trials(optuna: Any, study: Any, storage: Any, objective: Objective, settings: TuneSettings,
                facts: dict[str, Any], study_dir: Path) -> None:
    """Trials, one at a time, until the study has settings.trials finished ones (this worker's and others')."""
    running = optuna.trial.TrialState.RUNNING
    while True:
        for failed in studies.fail_orphans(optuna, study, storage):
            worker = failed.user_attrs.get(studies.WORKER, {})
            say(f"trial {failed.number}: its worker (pid {worker.get('pid')}) is gone; marked failed, queued again.")
            mark(study_dir / layout.trial_name(failed.number), state="FAIL",
                 reason=f"its worker (pid {worker.get('pid')}) ended without finishing it; queued again")
        trials = study.get_trials(deepcopy=False)
        done, under_way = finished_count(trials), sum(1 for t in trials if t.state == running)
        if done >= settings.trials:
            break
        if done + under_way >= settings.trials:
            say(f"{under_way} trial(s) of the study are running in other workers: this worker is done.")
            break
        study.optimize(objective, n_trials=1, catch=(Diverged,))
        if objective.current is not None:
            ended = next(t for t in study.get_trials(deepcopy=False) if t.number == objective.current)
            state = ended.state.name
            if state == "PRUNED" and ended.intermediate_values:
                state += f" at step {max(ended.intermediate_values)}"
            elif ended.user_attrs.get(DIVERGED):
                state += " (the training loss diverged)"
            value = f" {objective.metric}={ended.value:.6g}" if ended.value is not None else ""
            say(f"[bold]trial {ended.number}: {state}[/bold]{value}")
        objective.current = None
        best = best_trial(study)
        keep_models(study.get_trials(deepcopy=False), best.number if best else None, settings.keep)
        write_results(study, study_dir, facts)
