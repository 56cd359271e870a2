"""`nlpcli report`: the final metrics of several runs side by side (one column per run), as a rich table on
a terminal and as plain aligned text elsewhere (no escapes, no wrapping), or as JSON; with a row for each
setting that differs between the runs (learning rate, steps, batch size, loop, precision, ...), which the
chart's legend names too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from nlpcli import layout
from nlpcli.console import console, err_console, plain_table
from nlpcli.errors import UserError
from nlpcli.reporting.plot import INSTALL_HINT, draw_curves, load_matplotlib, not_installed
from nlpcli.reporting.runs import ReportedRun, read_run

# run.json facts shown above the metrics, when a run has them: what the run is, then how fast it went
DEFAULT_CHART = "comparison.png"
IDENTITY_KEYS = ("task", "model", "loop")
INFO_KEYS = (*IDENTITY_KEYS, "train_samples_per_second", "train_runtime_s", "peak_memory_mb", "wall_time_s")
LEGEND_SETTINGS = 4  # settings named in a run's legend entry; more are cut with "..."


def labels(runs: list[ReportedRun]) -> list[str]:
    """Column names: each folder's name, or its whole path when two runs share a name."""
    names = [run.label for run in runs]
    return [str(run.folder) if names.count(name) > 1 else name for run, name in zip(runs, names, strict=True)]


def format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _as_recorded(value: Any) -> Any:
    """A run fact as run.json has it (already rounded): 8.23 s/s, not 8.2300."""
    return str(value) if value is not None else None


def differing_settings(runs: list[ReportedRun]) -> list[str]:
    """The settings whose values differ between the runs that recorded theirs (none with fewer than two), in
    the order of the configuration; those the table shows as run facts (task, model, loop) left out."""
    recorded = [run.settings for run in runs if run.settings is not None]
    shown = {key for key in INFO_KEYS if any(key in run.info for run in runs)}
    keys: list[str] = []
    for settings in recorded:
        keys += [key for key in settings if key not in keys and key not in shown]
    missing = object()
    return [key for key in keys if len({repr(settings.get(key, missing)) for settings in recorded}) > 1]


def setting_text(value: Any) -> str:
    """A setting as a cell or legend shows it: 0.005, 2e-05, 8, none, a,b, key=value."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ",".join(map(setting_text, value))
    if isinstance(value, dict):
        return ",".join(f"{key}={setting_text(item)}" for key, item in value.items())
    return str(value)


def legend_labels(runs: list[ReportedRun]) -> list[str]:
    """Each run's name in the chart: its column name and the settings that tell it from the others."""
    keys = differing_settings(runs)
    found = []
    for run, label in zip(runs, labels(runs), strict=True):
        parts = [f"{key}={setting_text(run.settings[key])}" for key in keys if run.settings and key in run.settings]
        if len(parts) > LEGEND_SETTINGS:
            parts = [*parts[:LEGEND_SETTINGS], "..."]
        found.append(f"{label} ({', '.join(parts)})" if parts else label)
    return found


def _fact_rows(runs: list[ReportedRun], keys: tuple[str, ...]) -> list[tuple[str, list[Any]]]:
    return [(k, [_as_recorded(run.info.get(k)) for run in runs]) for k in keys if any(k in run.info for run in runs)]


def rows(runs: list[ReportedRun]) -> list[tuple[str, list[Any]]]:
    """(key, one value per run) for what the runs are (IDENTITY_KEYS), the settings that differ between them,
    the other run facts in INFO_KEYS, then every metric in first-seen order."""
    settings = [(key, [setting_text(run.settings[key]) if run.settings and key in run.settings else None
                       for run in runs]) for key in differing_settings(runs)]
    metric_keys: list[str] = []
    for run in runs:
        metric_keys += [k for k in (run.metrics or {}) if k not in metric_keys]
    return (_fact_rows(runs, IDENTITY_KEYS) + settings + _fact_rows(runs, INFO_KEYS[len(IDENTITY_KEYS):])
            + [(k, [(run.metrics or {}).get(k) for run in runs]) for k in metric_keys])


def rich_table(runs: list[ReportedRun]) -> Table:
    table = Table("", *labels(runs), title="runs", title_justify="left")
    for key, values in rows(runs):
        table.add_row(key, *(format_value(v) for v in values))
    return table


def as_json(runs: list[ReportedRun], chart: Path | None) -> dict[str, Any]:
    """The report for scripts; each run's `settings` are those that differ between the runs (as in the table)."""
    keys = differing_settings(runs)
    return {
        "runs": [
            {"folder": str(run.folder), "label": label, "metrics": run.metrics,
             "run": {k: run.info[k] for k in INFO_KEYS if k in run.info},
             "settings": {k: run.settings[k] for k in keys if k in run.settings} if run.settings is not None else None,
             "history": run.curves is not None}
            for run, label in zip(runs, labels(runs), strict=True)
        ],
        "differing_settings": keys,
        "chart": str(chart) if chart else None,
    }


def note(message: str) -> None:
    """A remark about the report on stderr, so that stdout stays the table (or the JSON)."""
    err_console.print(f"note: {escape(message)}", soft_wrap=True)


def report(folders: list[Path], output: Path | None, json_output: bool) -> None:
    """Print the runs' metrics side by side and draw their curves into `output` [comparison.png].

    A folder that is not a run is refused; a run without a history is in the table only, one without
    metrics (still running) in the chart only. Without matplotlib an explicit --output is refused."""
    if output is not None and (output.is_dir() or output.suffix.lower() != ".png"):
        raise UserError(f"--output {output}: expected the path of a .png file to draw the curves into.")
    runs = [read_run(folder) for folder in folders]
    for run in runs:
        if run.curves is None:
            note(f"{run.folder}: no {layout.HISTORY}; its metrics are in the table, it has no curves.")
        if run.metrics is None:
            note(f"{run.folder}: no {layout.METRICS} (still running?); it has curves but no final metrics.")
    drawable = [(label, run.curves) for run, label in zip(runs, legend_labels(runs), strict=True) if run.curves]
    chart = None
    if drawable:
        target = output or Path(DEFAULT_CHART)
        if load_matplotlib() is None:
            if output is not None:
                raise UserError(not_installed(target), hint=f"Install it with: {INSTALL_HINT}")
            note(not_installed(target))
        else:
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                names = [label for run, label in zip(runs, labels(runs), strict=True) if run.curves]
                chart = draw_curves(drawable, target, title="comparison: " + ", ".join(names))
            except OSError as err:
                raise UserError(f"--output {target}: cannot write it ({err.strerror or err}).") from None
    if json_output:
        print(json.dumps(as_json(runs, chart), indent=2))
        return
    if console.is_terminal:
        console.print(rich_table(runs))
    else:
        print(plain_table(rich_table(runs), title=False))
    if chart is not None:
        print(f"curves: {chart}")
