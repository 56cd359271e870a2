"""`nlpcli tune TASK [the task's options] --trials N`: one sub-command per task, with the task's own options (as
`nlpcli TASK` has them: they set what every trial shares) and the search's; each trial runs through the same code
as `nlpcli TASK` (`commands.task.run`). What a search does is `nlpcli.tuning`'s."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from nlpcli.commands.exits import reports_user_errors
from nlpcli.commands.task import TaskOptions, read_options, run, task_parameters
from nlpcli.config import user_given
from nlpcli.errors import UserError
from nlpcli.tasks import task_class

PANEL = "Tuning"
KEEP = ("best", "all")
# the task options that mean something else for a study
STUDY_MEANINGS = {
    "output_dir": "The study's folder: trial-<n>/ per trial, tune.json, tune.png, best_config.yaml, the journal "
                  "[runs/tune-<task>].",
    "resume": "Continue the study (yes, or a bare --resume), or start it if there is none (auto: how every worker "
              "of a shared study starts).",
    "overwrite": "Delete the study (its storage's record, its trial folders and files) first.",
}
TUNE_HELP = escape("Search a task's hyperparameters with Optuna: each trial an ordinary run in STUDY/trial-<n>/, "
                   "pruning, a study that survives a kill and scales out over workers. Needs: pip install "
                   "'nlpcli[tune]'.")


def _option(name: str, flag: str, annotation: Any, default: Any, help_text: str, **extra: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                             default=typer.Option(default, flag, help=escape(help_text), rich_help_panel=PANEL,
                                                  **extra))


TUNE_PARAMETERS = [
    _option("trials", "--trials", int, 20, "Trials the study runs in all (complete, pruned or diverged), over every "
            "worker and resume.", min=1, metavar="N"),
    _option("space", "--space", Path | None, None, "YAML file of the search space: KEY: {type: float|int|categorical, "
            "low, high, log, step, choices} [the task's default; see --print-space].", metavar="FILE"),
    _option("print_space", "--print-space", bool, False, "Print the search space in force as YAML and exit.",
            metavar=""),
    _option("metric", "--metric", str | None, None, "Evaluation metric to optimise, read from each trial's "
            "metrics.json [--metric-for-best-model].", metavar="KEY"),
    _option("direction", "--direction", str | None, None, "minimize or maximize [lower for losses and perplexity, "
            "else higher].", metavar="DIR"),
    _option("pruner", "--pruner", str, "median", "Stop unpromising trials at an evaluation: none, median or "
            "hyperband.", metavar="NAME"),
    _option("startup_trials", "--startup-trials", int, 5, "Trials sampled at random, and finished trials before "
            "the median pruner prunes.", min=0, metavar="N"),
    _option("storage", "--storage", str | None, None, "Database URL of the study (sqlite:///FILE, postgresql://..., "
            "mysql://...): workers on several machines share it [a journal file in --output-dir].", metavar="URL"),
    _option("study_name", "--study-name", str | None, None, "The study's name in its storage [--output-dir's "
            "name].", metavar="NAME"),
    _option("keep", "--keep", str, "best", "Which trials keep their model weights: best, or all.", metavar="WHICH"),
]


def _choice(value: str | None, choices: tuple[str, ...], flag: str) -> None:
    if value is not None and value not in choices:
        raise UserError(f"{flag} {value}: expected one of {', '.join(choices)}.")


def _study_parameters(name: str) -> list[inspect.Parameter]:
    """The task's options, with the help of those that mean something else for a study."""
    params = []
    for param in task_parameters(name, print_only=True):  # no --print-config: --print-space shows a study
        if param.name in STUDY_MEANINGS:
            info = copy.copy(param.default)
            info.help = escape(STUDY_MEANINGS[param.name])
            param = param.replace(default=info)
        params.append(param)
    return params


def fixed_keys(options: TaskOptions) -> set[str]:
    """The config keys the user set (options, --set, --config): the default search space leaves them fixed."""
    return user_given(options.resolve())


def tune_command(name: str) -> Callable[..., None]:
    """`nlpcli tune NAME`: the tune options, then the task's."""
    params = [*TUNE_PARAMETERS, *_study_parameters(name)]

    @reports_user_errors
    def command(**kwargs: Any) -> None:
        from nlpcli.tuning.loop import TuneSettings, tune
        from nlpcli.tuning.study import DIRECTIONS, PRUNERS

        options = read_options(name, kwargs)
        settings = TuneSettings(space_file=kwargs.pop("space"), **kwargs)
        _choice(settings.direction, DIRECTIONS, "--direction")
        _choice(settings.pruner, PRUNERS, "--pruner")
        _choice(settings.keep, KEEP, "--keep")
        tune(name, options.resolve, fixed_keys(options), settings,
             lambda cfg, hook: run(name, cfg, on_evaluation=hook))

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = f"Search {name}'s hyperparameters: {task_class(name).help}"
    return command
