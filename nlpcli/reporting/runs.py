"""Reading a run folder: `log_history.jsonl` into curves (one series of (step, value) per quantity),
`metrics.json` and `run.json` into a `ReportedRun`, with the settings it ran with (`nlpcli_config.yaml` with
every resume's changes, what run.json says actually ran). Refuses (UserError) files it cannot read, naming them."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlpcli import layout, run_folder
from nlpcli.errors import UserError
from nlpcli.metrics.kinds import metric_kind

TRAIN_LOSS = "loss"

Curves = dict[str, list[tuple[int, float]]]


@dataclass
class ReportedRun:
    """What `nlpcli report` knows of one run folder."""

    folder: Path
    metrics: dict[str, Any] | None
    info: dict[str, Any] = field(default_factory=dict)
    curves: Curves | None = None
    settings: dict[str, Any] | None = None  # what it ran with (`run_settings`); None: no nlpcli_config.yaml

    @property
    def label(self) -> str:
        return self.folder.name or str(self.folder)


def plotted(key: str) -> bool:
    """Whether an evaluation key gets its own curve: a metric, not a timing, a count or a per-group breakdown
    (the table shows those; the curves keep to the overall figures)."""
    kind = metric_kind(key)
    return kind.split == "eval" and not kind.timing and not kind.count and not kind.per_group


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def parse_history(lines: list[str], source: Path) -> Curves:
    """Curves from log_history.jsonl lines: the training loss, and each evaluation metric, against the step.

    A step logged twice (a resumed run repeats the steps after its checkpoint) keeps its last value. A last
    line cut short (the run is still writing) is skipped; any other line that is not a JSON object is refused."""
    by_step: dict[str, dict[int, float]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):
                break
            raise UserError(f"{source}, line {number}: not JSON ({err.msg}).") from None
        if not isinstance(record, dict):
            raise UserError(f"{source}, line {number}: expected a JSON object, got {type(record).__name__}.")
        step = record.get("step")
        if isinstance(step, bool) or not isinstance(step, int):
            continue  # not a step record (e.g. a run summary)
        keys = [TRAIN_LOSS] if TRAIN_LOSS in record else [k for k in record if plotted(k)]
        for key in keys:
            value = _number(record[key])
            if value is not None:
                by_step.setdefault(key, {})[step] = value
    return {key: sorted(points.items()) for key, points in by_step.items()}


def read_history(run_dir: Path) -> Curves | None:
    """The run's curves, or None when it has no log_history.jsonl."""
    path = Path(run_dir) / layout.HISTORY
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start}).") from None
    return parse_history(text.split("\n"), path)


def read_json_object(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not a JSON file ({err}).") from None
    if not isinstance(value, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(value).__name__}.")
    return value


NOT_SETTINGS = (run_folder.TASK_KEY, *run_folder.RUN_ONLY_KEYS, *run_folder.RECORD_KEYS)  # no setting of the run
RAN = ("precision", "world_size")  # run.json says what ran: fp32 where the config asked auto (or fp16 on a CPU)


def run_settings(folder: Path, info: dict[str, Any]) -> dict[str, Any] | None:
    """The settings a run ran with: its nlpcli_config.yaml keys as the last resume left them (e.g. the
    --max-steps it was resumed with), `resumes` (how many), and what run.json says ran (`RAN`). None when the
    folder has no nlpcli_config.yaml."""
    saved = run_folder.saved_settings(folder)
    if saved is None:
        return None
    settings = {key: value for key, value in saved.items() if key not in NOT_SETTINGS}
    resumes = saved.get(run_folder.RESUMES_KEY)
    settings["resumes"] = len(resumes) if isinstance(resumes, list) else 0
    ran = {key: info[key] for key in RAN if key in info}
    if run_folder.WORLD_SIZE_KEY in saved and "world_size" not in ran:
        ran["world_size"] = saved[run_folder.WORLD_SIZE_KEY]
    return {**settings, **ran}


def read_run(folder: Path) -> ReportedRun:
    """A run folder's metrics, facts and curves; refuses a folder that holds neither metrics nor a history."""
    folder = Path(folder)
    if not folder.exists():
        raise UserError(f"{folder}: no such run folder.")
    if not folder.is_dir():
        raise UserError(f"{folder}: a file, not a run folder.", hint="Give the --output-dir of a training run.")
    metrics = read_json_object(folder / layout.METRICS)
    curves = read_history(folder)
    if metrics is None and curves is None:
        raise UserError(f"{folder}: not an nlpcli run folder (no {layout.METRICS} and no {layout.HISTORY}).",
                        hint="Give the --output-dir of a training run.")
    info = read_json_object(folder / layout.RUN_INFO) or {}
    return ReportedRun(folder=folder, metrics=metrics, info=info, curves=curves, settings=run_settings(folder, info))
