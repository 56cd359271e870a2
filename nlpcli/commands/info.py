"""The commands that train nothing and read no task options: `nlpcli env` (this machine, for bug reports) and
`nlpcli report` (runs compared). `nlpcli config TASK` takes a task's options: see commands/task.py."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from nlpcli.commands.exits import reports_user_errors
from nlpcli.console import console


@reports_user_errors
def env(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Show versions, device, precision, hub reachability and presets (paste it into bug reports)."""
    from nlpcli.environment import describe_environment

    facts = describe_environment()
    if as_json:
        print(json.dumps(facts, indent=2))
        return
    table = Table("", "", show_header=False)
    for key, value in facts.items():
        table.add_row(key.replace("_", " "), str(value))
    console.print(table)


@reports_user_errors
def report(
    run_dirs: list[Path] = typer.Argument(..., metavar="RUN_DIR", help="Output folders of training runs."),
    output: Path | None = typer.Option(None, help="PNG to draw the runs' curves into (default: comparison.png)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Compare runs: their final metrics side by side, and their curves (loss, eval metrics) in one PNG."""
    from nlpcli.reporting.compare import report as compare_runs

    compare_runs(run_dirs, output, as_json)
