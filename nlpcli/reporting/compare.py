"""`nlpcli report`: the final metrics of several runs side by side (one column per run), as a rich table on
a terminal and as plain aligned text elsewhere (no escapes, no wrapping), or as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from nlpcli import layout
from nlpcli.console import console, err_console
from nlpcli.errors import UserError
from nlpcli.reporting.plot import INSTALL_HINT, draw_curves, load_matplotlib, not_installed
from nlpcli.reporting.runs import ReportedRun, read_run

# run.json facts shown above the metrics, when a run has them
DEFAULT_CHART = "comparison.png"
INFO_KEYS = ("task", "model", "loop", "train_samples_per_second", "train_runtime_s", "peak_memory_mb", "wall_time_s")


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


def rows(runs: list[ReportedRun]) -> list[tuple[str, list[Any]]]:
    """(key, one value per run) for the run facts in INFO_KEYS, then every metric in first-seen order."""
    keys = [k for k in INFO_KEYS if any(k in run.info for run in runs)]
    found = [(k, [_as_recorded(run.info.get(k)) for run in runs]) for k in keys]
    metric_keys: list[str] = []
    for run in runs:
        metric_keys += [k for k in (run.metrics or {}) if k not in metric_keys]
    return found + [(k, [(run.metrics or {}).get(k) for run in runs]) for k in metric_keys]


def rich_table(runs: list[ReportedRun]) -> Table:
    table = Table("", *labels(runs), title="runs", title_justify="left")
    for key, values in rows(runs):
        table.add_row(key, *(format_value(v) for v in values))
    return table


def plain_table(runs: list[ReportedRun]) -> str:
    """The same table as aligned text: one line per key, columns separated by two spaces."""
    return aligned([["", *labels(runs)]] + [[key, *(format_value(v) for v in values)] for key, values in rows(runs)])


def aligned(lines: list[list[str]]) -> str:
    """Rows of cells as aligned text (what a table is off a terminal: no escapes, no wrapping), columns separated
    by two spaces."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


def as_json(runs: list[ReportedRun], chart: Path | None) -> dict[str, Any]:
    return {
        "runs": [
            {"folder": str(run.folder), "label": label, "metrics": run.metrics,
             "run": {k: run.info[k] for k in INFO_KEYS if k in run.info}, "history": run.curves is not None}
            for run, label in zip(runs, labels(runs), strict=True)
        ],
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
    drawable = [(label, run.curves) for run, label in zip(runs, labels(runs), strict=True) if run.curves]
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
                chart = draw_curves(drawable, target, title="comparison: " + ", ".join(lbl for lbl, _ in drawable))
            except OSError as err:
                raise UserError(f"--output {target}: cannot write it ({err.strerror or err}).") from None
    if json_output:
        print(json.dumps(as_json(runs, chart), indent=2))
        return
    if console.is_terminal:
        console.print(rich_table(runs))
    else:
        print(plain_table(runs))
    if chart is not None:
        print(f"curves: {chart}")
