"""tune.png: the optimisation history (each trial's objective, pruned trials at their last reported value, the best
so far) and the parameter importances (`optuna.importance`, once two trials are complete), drawn headless with
matplotlib (the `plot` extra) as `nlpcli report` draws its charts."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

from nlpcli import layout
from nlpcli.console import warn
from nlpcli.files import write_bytes_atomic
from nlpcli.reporting.plot import load_matplotlib, not_installed

MIN_COMPLETE_FOR_IMPORTANCE = 2


def importances(study: Any) -> tuple[dict[str, float], str | None]:
    """(parameter -> importance, None), or ({}, why there are none yet)."""
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(complete) < MIN_COMPLETE_FOR_IMPORTANCE:
        return {}, f"importances need {MIN_COMPLETE_FOR_IMPORTANCE} complete trials ({len(complete)} so far)"
    try:
        with warnings.catch_warnings():  # e.g. "importances will be equal" with a handful of trials: the chart shows it
            warnings.simplefilter("ignore")
            return dict(optuna.importance.get_param_importances(study)), None
    except (RuntimeError, ValueError) as err:  # e.g. every complete trial has the same parameters
        return {}, f"no importances: {err}"


def _history(axes: Any, study: Any, metric: str) -> None:
    maximize = study.direction.name == "MAXIMIZE"
    best: float | None = None
    steps: list[tuple[int, float]] = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state.name == "COMPLETE" and trial.value is not None:
            axes.plot(trial.number, trial.value, "o", color="C0")
            best = trial.value if best is None else (max if maximize else min)(best, trial.value)
            steps.append((trial.number, best))
        elif trial.state.name == "PRUNED" and trial.intermediate_values:
            last = trial.intermediate_values[max(trial.intermediate_values)]
            axes.plot(trial.number, last, "x", color="C3")
    if steps:
        numbers, values = zip(*steps, strict=True)
        axes.step(numbers, values, where="post", color="C1", label="best so far")
    axes.plot([], [], "o", color="C0", label="complete")
    axes.plot([], [], "x", color="C3", label="pruned (last evaluation)")
    axes.set_title("optimisation history")
    axes.set_xlabel("trial")
    axes.set_ylabel(metric)
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")


def _importances(axes: Any, study: Any) -> None:
    found, why = importances(study)
    axes.set_title("parameter importances")
    if not found:
        axes.text(0.5, 0.5, why, ha="center", va="center", wrap=True, transform=axes.transAxes)
        axes.set_axis_off()
        return
    names = list(found)[::-1]  # most important on top
    axes.barh(names, [found[name] for name in names], color="C2")
    axes.set_xlabel("importance (optuna.importance)")
    axes.grid(alpha=0.3, axis="x")


def write_chart(study: Any, study_dir: Path, metric: str) -> Path | None:
    """study_dir/tune.png; None (with a warning) when matplotlib is not installed or the file cannot be written."""
    path = study_dir / layout.TUNE_CHART
    loaded = load_matplotlib()
    if loaded is None:
        warn(not_installed(path))
        return None
    figure_class, canvas_class = loaded
    figure = figure_class(figsize=(11, 4), dpi=100)
    canvas_class(figure)
    figure.subplots_adjust(left=0.08, right=0.97, bottom=0.14, top=0.86, wspace=0.45)
    _history(figure.add_subplot(1, 2, 1), study, metric)
    _importances(figure.add_subplot(1, 2, 2), study)
    figure.suptitle(f"study {study.study_name}")
    image = io.BytesIO()
    figure.savefig(image, format="png")
    try:
        write_bytes_atomic(path, image.getvalue())
    except OSError as err:
        warn(f"{path} not written: {err.strerror or err}")
        return None
    return path
