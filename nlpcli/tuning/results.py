"""What a study says once trials have run: one row per trial (parameters, objective, state, wall time, worker,
folder), written as `tune.json` and shown as a table, and the best trial's configuration as `best_config.yaml`
(ready for `nlpcli TASK --config best_config.yaml`). Every worker rewrites them after each trial, from the study's
storage: the files always describe the whole study."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from nlpcli import layout
from nlpcli.console import show_table as show
from nlpcli.files import write_text_atomic
from nlpcli.tuning.study import WORKER
from nlpcli.tuning.trial import CONFIG, DIVERGED, FOLDER

FINISHED = ("COMPLETE", "PRUNED")  # the trials --trials counts (and those that diverged)


def wall_time(trial: Any) -> float | None:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return round((trial.datetime_complete - trial.datetime_start).total_seconds(), 2)


def trial_row(trial: Any) -> dict[str, Any]:
    worker = trial.user_attrs.get(WORKER) or {}
    row: dict[str, Any] = {
        "number": trial.number, "state": trial.state.name, "value": trial.value, "params": trial.params,
        "wall_time_s": wall_time(trial), "folder": trial.user_attrs.get(FOLDER),
        "worker": f"{worker.get('host')}:{worker.get('pid')}" if worker else None,
    }
    if trial.state.name == "PRUNED" and trial.intermediate_values:
        row["pruned_at_step"] = max(trial.intermediate_values)
    if trial.user_attrs.get(DIVERGED):
        row["diverged"] = True
    if "failed_trial" in trial.system_attrs:  # queued again by Optuna's retry callback
        row["retry_of"] = trial.system_attrs["failed_trial"]
    return row


def finished_count(trials: list[Any]) -> int:
    """Trials that count towards --trials: complete, pruned, or failed by a diverging loss (retrying it would
    diverge again). A trial whose worker died is not counted: its retry is."""
    return sum(1 for t in trials if t.state.name in FINISHED or (t.state.name == "FAIL" and t.user_attrs.get(DIVERGED)))


def best_trial(study: Any) -> Any | None:
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    return study.best_trial if complete else None


def summary(study: Any, facts: dict[str, Any]) -> dict[str, Any]:
    """tune.json: the study's facts, its best trial and every trial."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name != "WAITING"]
    best = best_trial(study)
    return {
        **facts,
        "study_name": study.study_name,
        "direction": study.direction.name.lower(),
        "trials_finished": finished_count(trials),
        "best": None if best is None else {"number": best.number, "value": best.value, "params": best.params,
                                           "folder": best.user_attrs.get(FOLDER), "config": layout.BEST_CONFIG},
        "trials": [trial_row(t) for t in trials],
    }


def write_results(study: Any, study_dir: Path, facts: dict[str, Any]) -> dict[str, Any]:
    """tune.json and best_config.yaml (once a trial is complete), written atomically."""
    found = summary(study, facts)
    write_text_atomic(study_dir / layout.TUNE_RESULTS, json.dumps(found, indent=2, allow_nan=False, default=str))
    best = best_trial(study)
    if best is not None and best.user_attrs.get(CONFIG):
        header = (f"# nlpcli tune: trial {best.number} of study '{study.study_name}', {facts.get('metric')} = "
                  f"{best.value:.6g}\n# use it with: nlpcli {facts.get('task')} --config {layout.BEST_CONFIG}\n")
        write_text_atomic(study_dir / layout.BEST_CONFIG, header + best.user_attrs[CONFIG])
    return found


def _shown(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def table_rows(found: dict[str, Any]) -> list[list[str]]:
    """The trials as rows of cells, a header first: number (* for the best), state, objective, each parameter,
    wall time."""
    names = list(dict.fromkeys(name for row in found["trials"] for name in row["params"]))
    best = (found.get("best") or {}).get("number")
    lines = [["trial", "state", str(found.get("metric")), *names, "wall s"]]
    for row in found["trials"]:
        state = row["state"] + (" (diverged)" if row.get("diverged") else "")
        state += f" (retry of {row['retry_of']})" if "retry_of" in row else ""
        state += f" at step {row['pruned_at_step']}" if "pruned_at_step" in row else ""
        lines.append([f"{row['number']}{' *' if row['number'] == best else ''}", state, _shown(row["value"]),
                      *(_shown(row["params"].get(name)) for name in names), _shown(row["wall_time_s"])])
    return lines


def show_table(found: dict[str, Any]) -> None:
    """The trials table: a rich table on a terminal, aligned text elsewhere (a log keeps whole lines)."""
    lines = table_rows(found)
    table = Table(*lines[0], title=f"study {found['study_name']}", title_justify="left")
    for line in lines[1:]:
        table.add_row(*line)
    show(table)
